"""``revcli doctor``: one line per check of what revcli needs, each ok / warn / problem."""

from __future__ import annotations

from typing import Annotated

import typer

from revcli.cli import _options
from revcli.cli._console import ConsoleReporter, cli_errors, out, print_json, safe

_STYLE = {"ok": "green", "warn": "yellow", "problem": "bold red"}


def doctor(
    tracking_uri: _options.TrackingUri = None,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Optuna storage URL \\[env: REVCLI_STORAGE; default: sqlite in the "
        "workspace]", show_default=False)] = None,
    endpoint_url: _options.EndpointUrl = None,
    profile: _options.Profile = None,
    region: _options.Region = None,
    workspace: _options.Workspace = None,
    config: _options.Config = None,
    json: _options.Json = False,
) -> None:
    """Check the config, workspace, S3, tracking store, study storage and library versions.

    One line per check: ok, warn or problem (with the fix). Only reads: nothing is created,
    network checks ask once with a 3 s timeout, no credential is shown. Exit codes: 0 no
    problem (warnings allowed), 2 at least one problem.

    Example:

        revcli doctor --json
    """
    from revcli import doctor as core
    from revcli.errors import RevcliError

    reporter = ConsoleReporter()
    with cli_errors(reporter):
        report = core.diagnose(
            flags={"workspace": workspace, "tracking_uri": tracking_uri, "storage": storage,
                   "endpoint_url": endpoint_url, "aws_profile": profile, "region": region},
            config_file=config, reporter=reporter)
        reporter.close()
        if json:
            print_json(report.to_dict())
        else:
            from revcli.cli._console import output_width
            from revcli.cli._render import FIXED, WRAP, Col, fitted_table

            details = []
            for check in report.checks:
                fix = f" [dim]— fix:[/] {safe(check.fix)}" if check.fix and (
                    check.status != "ok") else ""
                details.append(f"{safe(check.detail)}{fix}")
            columns = [
                Col("status", "", [f"[{_STYLE[c.status]}]{c.status}[/]" for c in report.checks],
                    fit=FIXED),
                Col("check", "check", [safe(c.name) for c in report.checks], fit=FIXED),
                Col("detail", "detail and fix", details, fit=WRAP)]
            table, _ = fitted_table(columns, output_width(), grid=True)
            out.print(table)
        problems = report.problems
        if problems:
            raise RevcliError(f"{len(problems)} problem(s): "
                              f"{', '.join(dict.fromkeys(c.name for c in problems))}")
