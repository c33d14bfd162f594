"""Rich renderings shared by commands: the scorecard, target verdicts, leakage findings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from revcli.cli._console import out, safe


def _fmt(key: str, value: float | None) -> str:
    from revcli.metrics import format_value

    return format_value(key, value)


def _delta(metric: Any, value: float | None, base: float | None) -> str:
    """'better' / 'worse' than the baseline, by the metric's own direction."""
    gain = metric.gain(value, base)
    if not math.isfinite(gain):
        return ""
    if abs(gain) < 1e-12:
        return "[dim]same[/]"
    return "[green]better[/]" if gain > 0 else "[red]worse[/]"


def _leak_note(card: Any) -> str:
    names = ", ".join(card.leaks)
    return (f"[bold yellow]not honest:[/] trained with {safe(names)}, which gives the order "
            f"away; re-run with --drop-feature {safe(card.leaks[0])}")


def scorecard_table(card: Any, title: str, baseline_note: str | None = None) -> Table:
    """``baseline_note`` replaces the default description of the baseline (evaluate says where
    its train mean came from)."""
    baseline = (safe(baseline_note) if baseline_note
                else f"the train mean (${card.baseline_value:.2f}) on the same rows")
    caption = f"baseline: {baseline}; MAPE on converters only"
    if card.conv_baseline_value is not None:
        caption += (f"; converters' rows beside the train mean order value "
                    f"(${card.conv_baseline_value:.2f})")
    if card.leaks:
        caption += "\n" + _leak_note(card)
    table = Table(title=safe(title), title_justify="left", caption=caption,
                  caption_justify="left")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("vs baseline")
    for metric, value, base in card.rows_for_display():
        table.add_row(safe(metric.label), metric.format(value), metric.format(base),
                      _delta(metric, value, base))
    return table


def verdicts_table(verdicts: Sequence[dict[str, Any]], title: str = "targets",
                   leaks: Sequence[str] = ()) -> Table:
    table = Table(title=safe(title), title_justify="left",
                  caption=("[bold yellow]trained with a feature that gives the order away: "
                           "do not trust these passes[/]" if leaks else None),
                  caption_justify="left")
    for col in ("level", "metric", "target", "value", "result"):
        table.add_column(col)
    for v in verdicts:
        if not v["passed"]:
            result = "[red]FAIL[/]"
        elif leaks:
            result = "[yellow]pass (leak)[/]"
        else:
            result = "[green]pass[/]"
        table.add_row(safe(v["level"]), safe(v["metric"]), f"{v['op']} {v['threshold']:g}",
                      _fmt(v["metric"], v["value"]), result)
    return table


def render_scorecard(card: Any, title: str) -> None:
    out.print(scorecard_table(card, title))
    if card.verdicts:
        out.print(verdicts_table(card.verdicts, title=f"seed targets on {card.population}",
                                 leaks=card.leaks))


def render_leakage(honesty: Any, strategy: str) -> None:
    """The audit's findings as the run's one honesty verdict judged them."""
    if not honesty.findings and not honesty.too_good:
        out.print("[green]leakage audit: no single feature gives the order away[/]")
        return
    for f in honesty.findings:
        line = f"[bold yellow]leak:[/] {safe(f.feature)}: {safe(f.detail)}"
        if not honesty.can_inflate:
            line += (f" (constant on converting sessions, so it cannot inflate "
                     f"{safe(strategy)}; drop it for strategies scored on all sessions)")
        out.print(line)
    if honesty.too_good:
        out.print(f"[bold yellow]too good:[/] {safe(honesty.too_good)}")
