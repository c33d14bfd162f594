"""What a Dask worker holds for ``tune --cluster``: the search's CV folds, installed by a worker
plugin (revcli.tuning._cluster). A plugin, not scattered data: Dask hands a registered plugin to
every worker, also to one that joins or is restarted mid-search, while a scattered value lives
only on the workers that hold a replica (Dask's memory manager trims them), so the death of the
one that held it cancelled every trial after it ("already forgotten")."""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

#: The objectives installed in this worker process, by plugin name.
OBJECTIVES: dict[str, Any] = {}


class Folds(WorkerPlugin):
    """Installs ``objective`` (with its folds) in every worker under ``name``."""

    def __init__(self, name: str, objective: Any) -> None:
        self.name = name
        self.objective = objective

    def setup(self, worker: Any) -> None:
        OBJECTIVES[self.name] = self.objective

    def teardown(self, worker: Any) -> None:
        OBJECTIVES.pop(self.name, None)
