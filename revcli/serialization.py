"""How revcli's models are written and read without running code: skops, one list of trusted types.

A pickle runs whatever code its writer put in it, so every model revcli writes -- the workspace
copy (``models/<run>/model.skops``) and the model logged to MLflow -- is a skops file: a zip of
JSON and arrays that :func:`load` rebuilds only from types on :func:`trusted_types`, the one
declared list, read by every writer and reader (the workspace, MLflow's sklearn flavour, the
pyfunc loader below, ``push``). Loading such a file needs no record of who wrote it: any type not
on the list is refused by name before anything is built.

The list is revcli's own classes (the model, the featurizer and its segments, the log-target
wrapper, the trend-boosted XGBoost models, every registered strategy) and the few classes of the
estimators revcli builds that skops does not trust by default (XGBoost's models and booster,
scikit-learn's tree structures); scikit-learn's estimators and NumPy's types are trusted by skops
itself. ``tests/test_serialization.py`` checks
that every strategy around every estimator needs nothing else.

Pickles (``model.joblib`` of older workspaces) still load, under the sha256 rule of
:mod:`revcli.modelref`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from revcli.errors import DataError

SKOPS_FILE = "model.skops"
PICKLE_FILE = "model.joblib"  # what older workspaces hold; loaded only under the sha256 rule
SKOPS, PICKLE = "skops", "pickle"

#: Classes of the estimators revcli builds (revcli.estimators) that skops does not trust by
#: default: XGBoost's scikit-learn models and their booster, scikit-learn's fitted tree
#: structures (forests, histogram boosting) and what histogram boosting keeps of its input
#: validation (a partial of check_array), and the Bunch a VotingRegressor keeps its members in.
ESTIMATOR_TYPES = (
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBRegressor",
    "xgboost.sklearn.XGBClassifier",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils._bunch.Bunch",
    "sklearn.utils.validation.check_array",
    "functools.partial",
)


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def trusted_types() -> list[str]:
    """Every type a revcli model may hold beyond skops' own defaults: revcli's classes and
    :data:`ESTIMATOR_TYPES`. The one list every writer and reader uses."""
    from revcli import strategies
    from revcli.features import Featurizer
    from revcli.log_target import LogTargetRegressor
    from revcli.model import RevenueModel
    from revcli.reports import Group
    from revcli.strategies._two_stage import ExternalClassifier
    from revcli.trend import TrendXGBClassifier, TrendXGBRegressor

    own = [RevenueModel, Featurizer, LogTargetRegressor, ExternalClassifier, Group,
           TrendXGBRegressor, TrendXGBClassifier,
           *(strategies.get(name) for name in strategies.names())]
    return sorted({*(_name(cls) for cls in own), *ESTIMATOR_TYPES})


def format_of(path: str | Path) -> str:
    """SKOPS for a skops file (a zip with a ``schema.json``), else PICKLE (joblib or pickle)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return SKOPS if "schema.json" in archive.namelist() else PICKLE
    except (zipfile.BadZipFile, OSError, ValueError):
        return PICKLE


#: scikit-learn's estimator classes by name, as ``sklearn.utils.all_estimators()`` lists them,
#: for the scikit-learn release they were read from (:func:`skops_io`).
ESTIMATOR_NAMES_FILE = "sklearn_estimators.json"


def sklearn_estimator_names() -> list[str]:
    """The names skops trusts by default as scikit-learn's estimators, read from scikit-learn
    itself: ``all_estimators()`` imports every scikit-learn module to find them (~0.4 s)."""
    from sklearn.utils import all_estimators

    return [f"{cls.__module__}.{cls.__name__}" for _, cls in all_estimators()]


def write_estimator_names() -> Path:
    """Read :func:`sklearn_estimator_names` of the installed scikit-learn into
    :data:`ESTIMATOR_NAMES_FILE` (after an upgrade of scikit-learn:
    ``python -c "from revcli.serialization import write_estimator_names as w; w()"``)."""
    import json

    import sklearn

    from revcli import atomic, defaults

    path = Path(defaults.__file__).parent / ESTIMATOR_NAMES_FILE
    atomic.write_text(path, json.dumps({"scikit-learn": sklearn.__version__,
                                        "names": sklearn_estimator_names()}, indent=1) + "\n")
    return path


def _listed_estimators() -> list[tuple[str, type]] | None:
    """:data:`ESTIMATOR_NAMES_FILE` as ``all_estimators()`` would answer, when it was read from
    the scikit-learn release installed here; None otherwise."""
    import json

    import sklearn

    try:
        from revcli import defaults

        listed = json.loads(defaults.text(ESTIMATOR_NAMES_FILE))
    except (ImportError, OSError, ValueError):
        return None
    if listed.get("scikit-learn") != sklearn.__version__:
        return None
    out = []
    for name in listed["names"]:
        module, _, qualname = name.rpartition(".")
        # skops reads only the module and name of each class: stand-ins with the same names
        out.append((qualname, type(qualname, (), {"__module__": module})))
    return out


def skops_io() -> Any:
    """``skops.io``, imported without its walk of every scikit-learn module.

    skops builds its default list of trusted scikit-learn estimators at import, from
    ``sklearn.utils.all_estimators()``, which imports all of scikit-learn to find them: 0.35 s
    of each train and predict (issue 19). The same names, read from that very
    function for the installed release (:data:`ESTIMATOR_NAMES_FILE`, checked by
    tests/test_serialization.py), answer it for the length of the import; the function is put
    back at once. For any other scikit-learn release skops walks the modules as usual, so the
    list skops trusts is always the installed release's own.
    """
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    listed = _listed_estimators()
    real = sklearn.utils.all_estimators
    if listed is not None:
        sklearn.utils.all_estimators = lambda type_filter=None: list(listed)
    try:
        import skops.io
    finally:
        sklearn.utils.all_estimators = real
    return skops.io


def foreign_types(path: str | Path) -> list[str]:
    """The types in skops file ``path`` that are not on :func:`trusted_types` (nothing is
    built: skops reads the file's schema)."""
    skops = skops_io()

    try:
        found = skops.get_untrusted_types(file=path)
    except Exception as exc:  # a damaged archive fails in many ways; all mean "not a model"
        raise DataError(f"{path} is not a readable skops file ({type(exc).__name__}: "
                        f"{str(exc)[:200]})") from None
    trusted = set(trusted_types())
    return [name for name in found if name not in trusted]


def dump(model: Any, path: str | Path) -> None:
    """Write ``model`` as a skops file; a model holding a type not on the list is refused by
    name (it could not be loaded without trusting that type)."""
    skops_io().dump(model, path)
    foreign = foreign_types(path)
    if foreign:
        Path(path).unlink(missing_ok=True)
        raise DataError(f"the model holds types revcli does not trust ({', '.join(foreign)}), "
                        "so it cannot be saved in the safe format; revcli saves only models "
                        "built of its own and its estimators' classes")


def load(path: str | Path) -> Any:
    """The model in skops file ``path``, built from trusted types only: any other type is
    refused, named, before anything is built."""
    skops = skops_io()
    foreign = foreign_types(path)
    if foreign:
        raise DataError(f"{path} holds types revcli does not trust: {', '.join(foreign)}; "
                        "refusing to load it (only revcli's own classes and its estimators' "
                        "load without code review)")
    try:
        return skops.load(path, trusted=trusted_types())
    except Exception as exc:
        raise DataError(f"{path} cannot be loaded as a revcli model ({type(exc).__name__}: "
                        f"{str(exc)[:200]})") from None


def dumps_pickle(model: Any, path: str | Path) -> None:
    """The same model as a joblib pickle, for consumers that expect one (``push``'s default
    ``regression_model.pkl``)."""
    import joblib

    joblib.dump(model, path)


# -- MLflow's pyfunc flavour -----------------------------------------------------------------


class PyfuncModel:
    """What ``mlflow.pyfunc.load_model`` returns for a revcli model: ``predict`` on a table as
    revcli reads it."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def get_raw_model(self) -> Any:
        return self.model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.model.predict(data)


def _load_pyfunc(path: str) -> PyfuncModel:
    """MLflow's pyfunc loader of a logged revcli model (``loader_module: revcli.serialization``):
    the skops file loaded with revcli's own list of trusted types -- not a list read from the
    model's MLmodel file, which whoever wrote the model could have widened -- so it needs no
    ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``."""
    target = Path(path)
    if target.is_dir():
        target = target / SKOPS_FILE
    return PyfuncModel(load(target))


#: The revcli modules a model needs at load time (its classes and what they import), shipped
#: as the logged MLflow model's code instead of the whole package (measured: importing every
#: class on :func:`trusted_types` and loading a model of each strategy imports these and no
#: other revcli module; tests/test_serialization.py loads a logged model in a fresh process).
MODEL_MODULES = (
    "revcli", "revcli.errors", "revcli.threads", "revcli.estimators", "revcli.features",
    "revcli.log_target", "revcli.model", "revcli.serialization", "revcli.strategies",
    "revcli.strategies._population", "revcli.strategies._base", "revcli.strategies._all",
    "revcli.strategies._converting_only", "revcli.strategies._two_stage", "revcli.trend",
    "revcli.reports", "revcli.metrics", "revcli.defaults",
)
#: Data files the model's code reads, shipped beside those modules.
MODEL_DATA = (f"defaults/{ESTIMATOR_NAMES_FILE}",)
