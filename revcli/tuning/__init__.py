"""Hyperparameter search for revcli: spaces as data, honest CV, resumable Optuna studies.

- :mod:`._space`: the spaces file (``configs/spaces.toml``, else ``revcli/defaults/spaces.toml``)
- :mod:`._cv`: K-fold cross-validation on the training split, the objective and its metrics
- :mod:`._study`: storage, study names, recovery of crashed workers' trials, the sampler
- :mod:`._runs`: the MLflow parent run and the nested trial runs
- :mod:`._tune`: :func:`tune`, the one function the CLI calls
"""

from __future__ import annotations

from revcli.tuning._space import SearchSpace, SpaceFile
from revcli.tuning._space import load as load_spaces
from revcli.tuning._tune import Plan, TrialSummary, TuneResult, plan, tune

__all__ = ["Plan", "SearchSpace", "SpaceFile", "TrialSummary", "TuneResult", "load_spaces",
           "plan", "tune"]
