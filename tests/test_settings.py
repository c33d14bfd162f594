from __future__ import annotations

from pathlib import Path

import pytest

from revcli import settings
from revcli.errors import ConfigError


def test_layering_records_the_source(tmp_path: Path) -> None:
    config = tmp_path / "revcli.toml"
    config.write_text('seed = 7\nexperiment = "from-file"\nestimator = "rf"\n'
                      '[params.xgb]\nmax_depth = 3\n')
    s = settings.resolve(flags={"estimator": "hgb", "seed": None}, config_file=config,
                         env={"REVCLI_EXPERIMENT": "from-env"})
    assert (s.seed, s.source_of("seed")) == (7, f"file:{config}")
    assert (s.experiment, s.source_of("experiment")) == ("from-env", "env:REVCLI_EXPERIMENT")
    assert (s.estimator, s.source_of("estimator")) == ("hgb", "flag")
    assert (s.strategy, s.source_of("strategy")) == ("converting_only", "default")
    assert s.estimator_params("xgb") == {"max_depth": 3}


def test_default_config_file_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "revcli.toml").write_text("test_size = 0.25\n")
    monkeypatch.chdir(tmp_path)
    s = settings.resolve(env={})
    assert s.test_size == 0.25 and s.config_file == Path("configs/revcli.toml")


def test_mlflow_env_and_types() -> None:
    s = settings.resolve(env={"MLFLOW_TRACKING_URI": "http://x:5000", "REVCLI_SEED": "9",
                              "REVCLI_TIMEOUT": ""})
    assert s.tracking_uri == "http://x:5000" and s.seed == 9 and s.timeout is None
    assert isinstance(s.workspace, Path)


@pytest.mark.parametrize(("text", "message"), [
    ("seed = 'x'\n", "seed from .* must be int"),
    ("bogus = 1\n", "unknown setting 'bogus'"),
    ("seed = [\n", "not valid TOML"),
])
def test_bad_config_files(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        settings.resolve(config_file=config, env={})


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"\$REVCLI_TEST_SIZE"):
        settings.resolve(env={"REVCLI_TEST_SIZE": "lots"})


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        settings.resolve(config_file="nowhere.toml", env={})


def test_the_workspace_and_configs_are_found_from_a_subdirectory(tmp_path, monkeypatch):
    """Like git finds .git: the nearest directory up holding .revcli/ or configs/revcli.toml."""
    from revcli import settings as settings_mod

    monkeypatch.delenv("REVCLI_WORKSPACE", raising=False)
    project = tmp_path / "project"
    (project / "configs").mkdir(parents=True)
    (project / "configs" / "revcli.toml").write_text('experiment = "from-the-project"\n')
    deeper = project / "notebooks" / "2026"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    s = settings_mod.resolve(env={})
    assert s.experiment == "from-the-project"
    assert s.workspace.absolute() == project / ".revcli"
    assert s.targets.absolute() == project / "configs" / "targets.toml"
    # REVCLI_WORKSPACE still wins
    assert settings_mod.resolve(env={"REVCLI_WORKSPACE": str(tmp_path / "w")}).workspace == (
        tmp_path / "w")
    # a read-only command in the subdirectory makes no workspace there
    from typer.testing import CliRunner

    from revcli.cli import app

    result = CliRunner().invoke(app, ["compare", "runs"])
    assert result.exit_code == 0 and "no runs yet" in result.stderr
    assert not (deeper / ".revcli").exists() and not (project / ".revcli").exists()
