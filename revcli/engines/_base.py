"""The interface every engine implements: the pipeline's steps, in the order commands run them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from revcli.evaluate import Scored
    from revcli.leakage import LeakFinding
    from revcli.modelref import LoadedModel
    from revcli.pipeline import Fitted, Prepared
    from revcli.predict import PredictResult
    from revcli.progress import Reporter
    from revcli.settings import Settings
    from revcli.workspace import Workspace

#: ``engine.kind``: the whole table in this process, or a Dask cluster.
IN_PROCESS, DASK = "in-process", "dask"
#: ``--cluster local``: a LocalCluster revcli starts and stops.
LOCAL_CLUSTER = "local"


class Engine(Protocol):
    """Steps of the pipeline (revcli.pipeline), each returning what the in-process step returns
    (or an object with the same attributes), so the commands and runs.finish read either."""

    kind: str

    def describe(self) -> dict[str, Any]:
        """What ran the work, for --json (``engine``) and the run's tags."""
        ...

    def tags(self) -> dict[str, str]:
        """The run's ``revcli.*`` tags saying where it ran (no prefix)."""
        ...

    def prepare(self, settings: Settings, data: str | Path | None,
                drop_features: Sequence[str], reporter: Reporter) -> Prepared:
        """Load the dataset, check its contract, split it."""
        ...

    def audit(self, prepared: Prepared, reporter: Reporter,
              judged_for: Sequence[str] = ()) -> list[LeakFinding]:
        """The leakage audit on the training rows, one warning per finding that says what it
        means for the strategies ``judged_for`` (revcli.pipeline.warn_findings)."""
        ...

    def fit_and_score(self, prepared: Prepared, settings: Settings,
                      params: Mapping[str, Any], reporter: Reporter,
                      external: Any = None) -> Fitted:
        """Fit the encoding and the strategy on the training rows; score the holdout.
        ``external``: a classifier fitted elsewhere, two_stage's first stage (--classifier)."""
        ...

    def score_holdout(self, settings: Settings, workspace: Workspace, loaded: LoadedModel,
                      data: str | Path | None, worst: int, reporter: Reporter) -> Scored:
        """evaluate's rows: the model's own holdout (``data`` None, or its own dataset) or
        every row of ``data``, scored; the leakage audit on the data's rows; the ``worst``
        largest errors; the rows segments, importance and plots are drawn from."""
        ...

    def predict(self, settings: Settings, *, data: str | Path, out: str | Path,
                run: str | None, model: str | Path | None, trust: bool, batch_rows: int,
                reporter: Reporter) -> PredictResult:
        """Score every row of ``data`` into ``out``."""
        ...

    def search_trials(self, study: Any, objective: Any, budget: Any, stop: Any, *,
                      url: str, seed: int) -> str:
        """Run a tune's trials (revcli.tuning) until ``budget`` says stop; returns why."""
        ...

    def close(self) -> None:
        ...
