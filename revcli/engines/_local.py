"""The in-process engine: :mod:`revcli.pipeline`'s steps exactly as commands always ran them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revcli import pipeline
from revcli.engines._base import IN_PROCESS

if TYPE_CHECKING:
    from revcli.evaluate import Scored
    from revcli.leakage import LeakFinding
    from revcli.modelref import LoadedModel
    from revcli.predict import PredictResult
    from revcli.progress import Reporter
    from revcli.settings import Settings
    from revcli.workspace import Workspace


class InProcess:
    kind = IN_PROCESS

    def describe(self) -> dict[str, Any]:
        return {"kind": IN_PROCESS}

    def tags(self) -> dict[str, str]:
        return {}

    def prepare(self, settings: Settings, data: str | Path | None,
                drop_features: Sequence[str], reporter: Reporter) -> pipeline.Prepared:
        return pipeline.prepare(settings, data, drop_features, reporter)

    def audit(self, prepared: pipeline.Prepared, reporter: Reporter,
              judged_for: Sequence[str] = ()) -> list[LeakFinding]:
        return pipeline.audit(prepared, reporter, judged_for)

    def fit_and_score(self, prepared: pipeline.Prepared, settings: Settings,
                      params: Mapping[str, Any], reporter: Reporter,
                      external: Any = None) -> pipeline.Fitted:
        return pipeline.fit_and_score(prepared, settings, params, reporter, external=external)

    def score_holdout(self, settings: Settings, workspace: Workspace, loaded: LoadedModel,
                      data: str | Path | None, worst: int, reporter: Reporter) -> Scored:
        from revcli import evaluate

        return evaluate.score_in_process(workspace, loaded, data, worst, reporter)

    def predict(self, settings: Settings, *, data: str | Path, out: str | Path,
                run: str | None, model: str | Path | None, trust: bool, batch_rows: int,
                reporter: Reporter) -> PredictResult:
        from revcli import predict

        return predict.predict_file(settings, data=data, out=out, run=run, model=model,
                                    trust=trust, batch_rows=batch_rows, reporter=reporter)

    def search_trials(self, study: Any, objective: Any, budget: Any, stop: Any, *,
                      url: str, seed: int) -> str:
        from revcli.tuning import _tune

        return _tune.search_in_process(study, objective, budget, stop)

    def close(self) -> None:
        pass
