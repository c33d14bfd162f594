"""``revcli config``: the effective settings and where each one came from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from revcli.cli import _options
from revcli.cli._console import cli_errors, out, print_json, safe
from revcli.urls import mask


def config(
    config: _options.Config = None,
    workspace: _options.Workspace = None,
    json: _options.Json = False,
    env: Annotated[bool, typer.Option(
        "--env", help="Print `export` lines that point MLflow's CLI, boto3 and CI jobs at the "
        "workspace's stores (never a credential)")] = False,
) -> None:
    """Show the effective settings: defaults < config file < REVCLI_* env < flags.

    With `--env`, print the `export MLFLOW_TRACKING_URI=...` lines (and the S3 endpoint and
    region when set) a shell or CI job can source, so `mlflow models serve -m runs:/<id>/model`
    and `mlflow runs list` find revcli's runs.

    Example:

        REVCLI_SEED=7 revcli config
        eval "$(revcli config --env)"
    """
    from revcli import settings as settings_mod

    with cli_errors():
        settings = _options.resolve(config, workspace=workspace)
    if env:
        from revcli.environment import exports

        found = exports(settings)
        if json:
            print_json({"env": {e.name: e.value for e in found},
                        "notes": {e.name: e.note for e in found if e.note}})
        else:
            for export in found:
                print(export.line())
        return
    rows = []
    for f in settings_mod.setting_fields():
        value = getattr(settings, f.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, str) and "://" in value:
            value = mask(value)  # never a password, wherever a URL is shown
        rows.append({"name": f.name, "value": value,
                     "source": settings.source_of(f.name), "env": settings_mod.env_names(f)[0],
                     "help": f.metadata["help"]})
    if json:
        print_json({"config_file": str(settings.config_file) if settings.config_file else None,
                    "settings": rows, "params": settings.params})
        return
    from revcli.cli._console import output_width
    from revcli.cli._render import FIXED, WRAP, Col, fitted_table, left_out

    width = output_width()
    columns = [
        Col("setting", "setting", [r["name"] for r in rows], fit=FIXED),
        Col("value", "value", ["-" if r["value"] is None else safe(r["value"]) for r in rows],
            fit=WRAP),
        Col("source", "source", [safe(r["source"]) for r in rows], fit=WRAP),
        Col("env", "env", [r["env"] for r in rows], fit=FIXED, priority=1)]
    table, dropped = fitted_table(
        columns, width, title="revcli settings",
        row_styles=["dim" if r["source"] == "default" else "bold" for r in rows])
    out.print(table)
    missing = left_out(dropped, width, "--json has it; each setting's env is REVCLI_<NAME>")
    if missing:
        out.print(missing, highlight=False)
    found = settings.config_file or "none (configs/revcli.toml not found)"
    out.print(f"config file: {safe(found)}")
    for name, params in settings.params.items():
        out.print(f"{safe(f'[params.{name}]')} {safe(params)}")
