"""Options shared by several commands, defined once.

Options default to ``None`` ("not given") so the settings resolver can tell a flag from a default
and layer it over the config file and the ``REVCLI_*`` environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from revcli import settings as settings_mod

Workspace = Annotated[Path | None, typer.Option(
    "--workspace", "-w", help="Workspace directory \\[env: REVCLI_WORKSPACE; default: ./.revcli]",
    show_default=False)]
Config = Annotated[Path | None, typer.Option(
    "--config", "-c", help="Config file \\[env: REVCLI_CONFIG; default: configs/revcli.toml]",
    show_default=False)]
TrackingUri = Annotated[str | None, typer.Option(
    "--tracking-uri", help="MLflow tracking URI \\[env: MLFLOW_TRACKING_URI; default: sqlite in "
    "the workspace]", show_default=False)]
Experiment = Annotated[str | None, typer.Option(
    "--experiment", help="MLflow experiment \\[env: REVCLI_EXPERIMENT; default: "
    "Revenue_Prediction_Regression]", show_default=False)]
Seed = Annotated[int | None, typer.Option(
    "--seed", help="Seed of the split and the estimators \\[env: REVCLI_SEED; default: 42]",
    show_default=False)]
Json = Annotated[bool, typer.Option(
    "--json", help="Print one JSON object on stdout and nothing else (progress stays on "
    "stderr; -q silences it)")]
Quiet = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Only errors, warnings and the result")]
Data = Annotated[Path | None, typer.Option(
    "--data", help="Train on this local parquet file (or directory of parquet parts) instead of "
    "the workspace's current dataset "
    "(it is validated and cached; the current dataset stays as it is)", show_default=False)]

EndpointUrl = Annotated[str | None, typer.Option(
    "--endpoint-url", help="S3 endpoint, e.g. http://localhost:9000 for MinIO \\[env: "
    "REVCLI_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL; default: AWS S3]",
    show_default=False)]
Profile = Annotated[str | None, typer.Option(
    "--profile", help="AWS profile for the S3 credentials \\[env: AWS_PROFILE; default: the "
    "standard AWS credential chain]", show_default=False)]
Region = Annotated[str | None, typer.Option(
    "--region", help="S3 region \\[env: REVCLI_REGION, AWS_DEFAULT_REGION]", show_default=False)]
# ("\\[" keeps rich markup from swallowing the bracketed default.)
DropFeature = Annotated[list[str] | None, typer.Option(
    "--drop-feature", "-d", help="Leave this column out of the features, repeatable",
    show_default=False)]
Combine = Annotated[str | None, typer.Option(
    "--combine", help="two_stage: expected (P x value) or threshold \\[default: expected]",
    show_default=False)]
Threshold = Annotated[float | None, typer.Option(
    "--threshold", help="two_stage --combine threshold: P(order) cut-off \\[default: 0.5]",
    show_default=False)]


SplitKind = Annotated[str | None, typer.Option(
    "--split", help="random (stratified on is_ordered) or time (train on the earliest "
    "sessions, test on the latest) \\[env: REVCLI_SPLIT; default: random]", show_default=False)]
TimeColumn = Annotated[str | None, typer.Option(
    "--time-column", help="--split time: the timestamp column \\[default: the table's only one]",
    show_default=False)]
Gap = Annotated[str | None, typer.Option(
    "--gap", help="--split time: leave out sessions this long before the test part (90m, 12h, "
    "7d, 2w)", show_default=False)]
TestSize = Annotated[float | None, typer.Option(
    "--test-size", help="Holdout share \\[default: 0.2]", show_default=False)]


Cluster = Annotated[str | None, typer.Option(
    "--cluster", help="Run on a Dask cluster: local (one revcli starts and stops) or "
    "tcp://host:8786 (an existing scheduler) \\[env: REVCLI_CLUSTER, DASK_SCHEDULER_ADDRESS; "
    "default: in this process]", show_default=False)]
ClusterWorkers = Annotated[int | None, typer.Option(
    "--cluster-workers", help="--cluster local: worker processes \\[default: one per core]",
    show_default=False)]
WorkerMemory = Annotated[str | None, typer.Option(
    "--worker-memory", help="--cluster local: memory limit per worker, e.g. 4GB \\[default: "
    "memory / workers]", show_default=False)]


Note = Annotated[str | None, typer.Option(
    "--note", help="A description for the MLflow run (markdown; shown in the MLflow UI)",
    show_default=False)]
Tag = Annotated[list[str] | None, typer.Option(
    "--tag", help="key=value tag for the MLflow run, repeatable", show_default=False)]

Trust = Annotated[bool, typer.Option(
    "--trust", help="Load a model file whose sha256 does not match its record, or has none "
    "(unpickling runs code: only for files you know)")]


def parse_tags(items: list[str] | None) -> dict[str, str]:
    """``--tag key=value`` (repeatable) as a dict; a key without ``=`` is refused."""
    from revcli.errors import ConfigError

    tags = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--tag {item!r} is not key=value (e.g. --tag team=growth)")
        if key.startswith(("revcli.", "mlflow.")):
            raise ConfigError(f"--tag {key!r}: revcli.* and mlflow.* tags are revcli's own")
        tags[key] = value.strip()
    return tags


def resolve(config: Path | None, **flags: Any) -> settings_mod.Settings:
    """Settings for one command: flags given on the command line over env, file and defaults."""
    return settings_mod.resolve(flags=flags, config_file=config)


Classifier = Annotated[str | None, typer.Option(
    "--classifier", help="two_stage: use this classifier fitted elsewhere as the P(order) stage "
    "and fit only the order value (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model "
    "or a run id in the tracking store; sklearn or xgboost flavour; a pickle needs --trust)",
    show_default=False)]
