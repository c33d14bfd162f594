"""``revcli push``: a trained model to S3 and the MLflow Model Registry, optionally promoted."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from revcli.cli import _options
from revcli.cli._console import (
    ConsoleReporter,
    cli_errors,
    out,
    print_json,
    safe,
    stdout_to_stderr,
)


def push(
    run: Annotated[str, typer.Option(
        "--run", "-r", help="The run: its id, a unique prefix (as `compare runs` prints), its "
        "name or a registry alias; its model must be in this workspace", show_default=False)],
    promote: Annotated[bool, typer.Option(
        "--promote", help="Make it the registry's `champion` if it beats the current one on the "
        "same dataset and split (exit 1 if not)")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="With --promote: promote even when the gate refuses (other dataset or "
        "split, a leak, a loss); the override is recorded on the version")] = False,
    margin: Annotated[str | None, typer.Option(
        "--margin", help="With --promote: the gain the candidate needs, in the metric's unit "
        "(0.05) or as a share of the champion's score (0.5%); 0 promotes on any gain "
        r"\[default: a gain clear of the noise, both models scored on the same rows]",
        show_default=False)] = None,
    uri: Annotated[str | None, typer.Option(
        "--uri", help="Model object s3://bucket/key \\[env: REVCLI_MODEL_URI; default: "
        "s3://models/regression_model.pkl]", show_default=False)] = None,
    key: Annotated[str | None, typer.Option(
        "--key", help="Only change the key, keeping the bucket of --uri / model_uri",
        show_default=False)] = None,
    metric: Annotated[str | None, typer.Option(
        "--metric", help="Metric the promotion gate compares \\[env: REVCLI_PROMOTE_METRIC; "
        "default: rmse]", show_default=False)] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Registered model name \\[env: REVCLI_REGISTRY_MODEL; default: "
        "revenue-regression]", show_default=False)] = None,
    endpoint_url: _options.EndpointUrl = None,
    profile: _options.Profile = None,
    region: _options.Region = None,
    tracking_uri: _options.TrackingUri = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
    quiet: _options.Quiet = False,
    note: Annotated[str | None, typer.Option(
        "--note", help="Description of the registered model version (shown in MLflow)",
        show_default=False)] = None,
    tag: _options.Tag = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="both: a joblib pickle at the key (for consumers that expect one) and "
        "the skops file beside it (.skops, loads without running code); skops: the skops file "
        "only")] = "both",
) -> None:
    """Upload a trained model and its metadata to S3 and register it in MLflow.

    The run's model (checked against its recorded sha256) goes to the model URI as a joblib
    pickle and beside it as a skops file (regression_model.skops: load this one, it runs no
    code), each with its sha256 in its S3 metadata (x-amz-meta-sha256), a metadata JSON beside
    them (both sha256s, run, metrics, params, dataset sha256, split hash, versions), and a new
    version of the registered model. --format skops uploads the skops file only.

    With --promote the gate runs first: the model becomes `champion` only if it beats the
    current champion on the metric, scored on the same dataset sha256, split hash and
    population, and was trained without a leaking feature. Otherwise it exits 1 and nothing is
    uploaded or registered. The first model pushed with --promote becomes champion.

    Examples:

        revcli push --run 3f2a9c
        revcli push --run 3f2a9c --promote
        revcli push --run 3f2a9c --promote --margin 0.5%
        revcli push --run 3f2a9c --format skops
        revcli push --run 3f2a9c --uri s3://models/candidate.pkl --endpoint-url http://localhost:9000
    """
    from revcli import push as core

    reporter = ConsoleReporter(quiet=quiet)
    with cli_errors(reporter):
        if force and not promote:
            raise typer.BadParameter("--force only changes what --promote does; add --promote")
        if margin is not None and not promote:
            raise typer.BadParameter("--margin only changes what --promote does; add --promote")
        settings = _options.resolve(
            config, workspace=workspace, model_uri=uri, promote_metric=metric,
            registry_model=name, endpoint_url=endpoint_url, aws_profile=profile, region=region,
            tracking_uri=tracking_uri)
        with stdout_to_stderr(json):
            result = core.push(settings, run, key=key, promote=promote, force=force,
                               margin=margin, note=note, tags=_options.parse_tags(tag), fmt=fmt,
                               reporter=reporter)
        reporter.close()
        if json:
            print_json(result.to_dict())
            return
        _render(result, quiet)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _render(result: Any, quiet: bool) -> None:
    out.print(f"model [bold]{safe(result.model_uri)}[/] ({_size(result.model_bytes)}, sha256 "
              f"{result.model_sha256[:12]}) at {result.endpoint}")
    for entry in result.files[1:]:
        out.print(f"model [bold]{safe(entry['uri'])}[/] ({_size(entry['bytes'])}, sha256 "
                  f"{entry['sha256'][:12]}, {entry['format']})")
    if not quiet:
        out.print(f"metadata {safe(result.metadata_uri)}")
    again = " (already registered: reused)" if result.version_reused else ""
    out.print(f"registered [bold]{safe(result.registry_model)}[/] version {result.version}{again} "
              f"at {safe(result.tracking_uri)}")
    gate = result.gate
    if gate is not None:
        if gate.verdict == "already champion":
            out.print(f"version {result.version} stays champion")
        else:
            verdict = "promoted" if gate.passed else "promoted by --force"
            out.print(f"[bold green]{verdict}[/]: version {result.version} is now champion: "
                      f"{'; '.join(gate.reasons)}")
    elif result.champion:
        out.print(f"champion stays version {result.champion} (use --promote to compete)")
    else:
        out.print("no champion yet: `revcli push --run ... --promote` sets one")
