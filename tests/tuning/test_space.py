"""The spaces file: its format, its checks, and what a trial samples from it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import optuna
import pytest

from revcli.errors import ConfigError, NotFoundError
from revcli.tuning import _space

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ask():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    return study.ask


def _parse(text: str) -> _space.SpaceFile:
    return _space.parse(tomllib.loads(text), "test.toml")


def test_configs_link_to_the_one_copy_in_the_package() -> None:
    # configs/ is what a checkout edits; an install without the repository reads the same
    # files from the package: one copy each, not two kept equal.
    for name in ("spaces.toml", "targets.toml"):
        link = REPO / "configs" / name
        assert link.is_symlink() and link.resolve() == REPO / "revcli" / "defaults" / name


def test_builtin_spaces_load_and_cover_what_the_target_needs() -> None:
    spaces = _space.load(None)
    assert spaces.builtin and "built-in" in spaces.source
    xgb = {p.name: p for p in spaces.spaces["xgb"].params}
    assert set(xgb["objective"].choices) == {"reg:squarederror", "reg:tweedie", "count:poisson"}
    assert xgb["objective"].when == (("strategy", ("all", "two_stage")),)
    power = xgb["tweedie_variance_power"]
    assert 1 < power.low < power.high < 2 and power.when == (("objective", ("reg:tweedie",)),)
    hgb = {p.name: p for p in spaces.spaces["hgb"].params}
    assert set(hgb["loss"].choices) == {"squared_error", "poisson"}
    assert any(p.classifier for p in spaces.spaces["xgb"].params)
    assert spaces.all_estimators and "mean" not in spaces.all_estimators


def test_missing_default_file_falls_back_but_an_explicit_one_does_not(tmp_path: Path) -> None:
    assert _space.load(tmp_path / "nope.toml", fallback=True).builtin
    with pytest.raises(NotFoundError, match=r"nope\.toml does not exist"):
        _space.load(tmp_path / "nope.toml", fallback=False)
    path = tmp_path / "mine.toml"
    path.write_text('[ridge]\nalpha = { type = "float", low = 0.1, high = 10.0, log = true }\n')
    loaded = _space.load(path, fallback=True)
    assert not loaded.builtin and loaded.source == str(path)


@pytest.mark.parametrize(("text", "fragment"), [
    ('[xgb]\nmax_depth = { type = "uniform", low = 1, high = 3 }',
     "[xgb].max_depth: unknown distribution type 'uniform'"),
    ('[xgb]\nmax_depth = { type = "int", low = 8, high = 2 }', "low 8 > high 2"),
    ('[xgb]\nmax_depth = { type = "int", low = 1.5, high = 3 }', "integer low, high and step"),
    ('[xgb]\nlearning_rate = { type = "float", low = 0, high = 1, log = true }',
     "log = true needs low > 0"),
    ('[xgb]\nlearning_rate = { type = "float", low = 0.1, high = 1, log = true, step = 0.1 }',
     "cannot be combined"),
    ('[xgb]\nmax_depth = { type = "int", low = 1, high = 3, step = 0 }', "step must be positive"),
    ('[xgb]\nmax_depth = { type = "int", low = 1 }', "int needs high"),
    ('[xgb]\nobjective = { type = "categorical", choices = [] }', "non-empty list"),
    ('[xgb]\nmax_depth = { type = "int", low = 1, high = 3, lo = 2 }', "unknown key 'lo'"),
    ('[hgb]\ndepth = { type = "int", low = 1, high = 3 }',
     "[hgb].depth: the estimator of 'hgb' takes no parameter 'depth'; valid: "),
    ('[ridge]\nclassifier__alpha = { type = "float", low = 0.1, high = 1.0 }',
     "the classifier of 'ridge' takes no parameter 'alpha'"),
    ('[xgb]\nmade_up_booster_param = { type = "float", low = 0.1, high = 1.0 }',
     "the estimator of 'xgb' takes no parameter 'made_up_booster_param'"),
    ('[svm]\nC = { type = "float", low = 0.1, high = 1.0 }', "[svm]: unknown estimator"),
    ('[xgb]\nmax_depth = { type = "int", low = 1, high = 3, when = { strategy = "some" } }',
     "unknown strategy 'some'"),
    ('[xgb]\ntweedie_variance_power = { type = "float", low = 1.1, high = 1.9, '
     'when = { objective = "reg:tweedie" } }', "neither 'strategy' nor a parameter declared"),
    ('all_estimators = ["xgb"]\n[ridge]\nalpha = { type = "float", low = 0.1, high = 1.0 }',
     "'xgb' has no table"),
])
def test_malformed_spaces_are_one_line_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        _parse(text)
    message = str(info.value)
    assert fragment in message and "\n" not in message and message.startswith("test.toml: ")


def test_xgboost_booster_parameters_are_taken_and_reach_the_booster() -> None:
    # tweedie_variance_power is not in XGBRegressor.get_params(): XGBoost takes it as **kwargs.
    import warnings

    import numpy as np

    from revcli import strategies

    spaces = _parse('[xgb_log]\ntweedie_variance_power = { type = "float", low = 1.1, '
                    'high = 1.9 }\n[ensemble]\nxgb__tweedie_variance_power = { type = "float", '
                    'low = 1.1, high = 1.9 }\n')
    assert set(spaces.spaces) == {"xgb_log", "ensemble"}
    model = strategies.build("two_stage", "xgb", {"objective": "reg:tweedie",
                                                  "tweedie_variance_power": 1.3})
    rng = np.random.default_rng(0)
    X, y = rng.random((200, 3)), np.where(rng.random(200) < 0.3, 50.0, 0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y)
    assert not [w for w in caught if "are not used" in str(w.message)]
    assert model.regressor_.get_params()["tweedie_variance_power"] == 1.3


def test_conditions_decide_what_a_trial_samples(ask) -> None:
    spaces = _space.load(None)
    converting = spaces.search("xgb", "converting_only")
    name, params = converting.suggest(ask())
    assert name == "xgb" and "objective" not in params
    assert not any(k.startswith("classifier__") for k in params)

    two_stage = spaces.search("xgb", "two_stage")
    seen_power = seen_without = False
    for _ in range(30):
        _, params = two_stage.suggest(ask())
        assert "objective" in params and "classifier__max_depth" in params
        if params["objective"] == "reg:tweedie":
            assert 1.05 <= params["tweedie_variance_power"] <= 1.95
            seen_power = True
        else:
            assert "tweedie_variance_power" not in params
            seen_without = True
    assert seen_power and seen_without


def test_all_is_a_conditional_space_that_decodes_back(ask) -> None:
    spaces = _space.load(None)
    every = spaces.search("all", "all")
    assert every.estimators == list(spaces.all_estimators)
    chosen = set()
    for _ in range(40):
        trial = ask()
        name, params = every.suggest(trial)
        chosen.add(name)
        assert trial.params["estimator"] == name
        assert all(k == "estimator" or k.startswith(f"{name}.") for k in trial.params)
        assert every.decode(trial.params) == (name, params)
    assert len(chosen) >= 3


def test_unknown_or_undeclared_estimators_are_refused() -> None:
    spaces = _space.load(None)
    with pytest.raises(ConfigError, match="unknown estimator 'svm'"):
        spaces.search("svm", "all")
    with pytest.raises(ConfigError, match="declares no search space for 'mean'"):
        spaces.search("mean", "all")


def test_the_hash_follows_the_content() -> None:
    a = _parse('[ridge]\nalpha = { type = "float", low = 0.1, high = 10.0 }')
    b = _parse('[ridge]\nalpha = { type = "float", low = 0.1, high = 20.0 }')
    again = _parse('[ridge]\nalpha = { type = "float", low = 0.1, high = 10.0 }')
    assert a.search("ridge", "all").hash == again.search("ridge", "all").hash
    assert a.search("ridge", "all").hash != b.search("ridge", "all").hash
