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
    "--json", help="Print one JSON object on stdout and nothing else")]
Quiet = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Only errors, warnings and the result")]
Data = Annotated[Path | None, typer.Option(
    "--data", help="Train on this local parquet file instead of the workspace's current dataset "
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


def resolve(config: Path | None, **flags: Any) -> settings_mod.Settings:
    """Settings for one command: flags given on the command line over env, file and defaults."""
    return settings_mod.resolve(flags=flags, config_file=config)
