"""Rich renderings shared by commands: the scorecard, target verdicts, leakage findings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from revcli.cli._console import out


def _fmt(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if key in {"r2", "conv_r2", "gini", "auc", "total_ratio"}:
        return f"{value:.3f}"
    if key == "top10_share":
        return f"{value * 100:.1f} %"
    if key in {"mape", "conv_mape"}:
        return f"{value:.1f} %"
    return f"{value:.2f}"


def _delta(value: float, base: float, better: str) -> str:
    """'better' / 'worse' than the baseline, by the metric's own direction."""
    if any(v is None or math.isnan(v) for v in (value, base)):
        return ""
    if better == "closer to 1":
        gain = abs(base - 1.0) - abs(value - 1.0)
    else:
        gain = (value - base) if better == "higher" else (base - value)
    if abs(gain) < 1e-12:
        return "[dim]same[/]"
    return "[green]better[/]" if gain > 0 else "[red]worse[/]"


def _leak_note(card: Any) -> str:
    names = ", ".join(card.leaks)
    return (f"[bold yellow]not honest:[/] trained with {escape(names)}, which gives the order "
            f"away; re-run with --drop-feature {escape(card.leaks[0])}")


def scorecard_table(card: Any, title: str, baseline_note: str | None = None) -> Table:
    """``baseline_note`` replaces the default description of the baseline (evaluate says where
    its train mean came from)."""
    baseline = (escape(baseline_note) if baseline_note
                else f"the train mean (${card.baseline_value:.2f}) on the same rows")
    caption = f"baseline: {baseline}; MAPE on converters only"
    if card.leaks:
        caption += "\n" + _leak_note(card)
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("vs baseline")
    for key, label, value, base, better in card.rows_for_display():
        table.add_row(label, _fmt(key, value), _fmt(key, base), _delta(value, base, better))
    return table


def verdicts_table(verdicts: Sequence[dict[str, Any]], title: str = "targets",
                   leaks: Sequence[str] = ()) -> Table:
    table = Table(title=title, title_justify="left",
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
        table.add_row(v["level"], v["metric"], f"{v['op']} {v['threshold']:g}",
                      _fmt(v["metric"], v["value"]), result)
    return table


def render_scorecard(card: Any, title: str) -> None:
    out.print(scorecard_table(card, title))
    if card.verdicts:
        out.print(verdicts_table(card.verdicts, title=f"seed targets on {card.population}",
                                 leaks=card.leaks))


def render_leakage(findings: Sequence[Any], too_good: str | None, strategy: str = "") -> None:
    if not findings and not too_good:
        out.print("[green]leakage audit: no single feature gives the order away[/]")
        return
    for f in findings:
        line = f"[bold yellow]leak:[/] {escape(f.feature)}: {escape(f.detail)}"
        if strategy == "converting_only":
            line += (" (constant on converting sessions, so it cannot inflate converting_only; "
                     "drop it for all and two_stage)")
        out.print(line)
    if too_good:
        out.print(f"[bold yellow]too good:[/] {escape(too_good)}")
