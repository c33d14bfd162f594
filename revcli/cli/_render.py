"""Rich renderings shared by commands: the scorecard, target verdicts, leakage findings, and
tables laid out for the width they get (:func:`fit_columns`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from rich.table import Table
from rich.text import Text

from revcli.cli._console import out, safe


def _fmt(key: str, value: float | None) -> str:
    from revcli.metrics import format_value

    return format_value(key, value)


def _delta(metric: Any, value: float | None, base: float | None) -> str:
    """'better' / 'worse' than the baseline, by the metric's own direction."""
    from revcli.metrics import same

    gain = metric.gain(value, base)
    if not math.isfinite(gain):
        return ""
    if same(metric, value, base):
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
        caption += (f"; converters' rows: the order value it predicts for a converting "
                    f"session, beside the train mean order value "
                    f"(${card.conv_baseline_value:.2f})")
    elif card.scored_on == "sessions":
        caption += f"; no converter rows: {card.strategy} predicts no order value"
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


# train's steps in the order they run: (key in the timings, what it covers).
TIMED_STEPS = (
    ("load", "check, read, split the data"),
    ("audit", "leakage audit"),
    ("fit", "fit the model"),
    ("score", "predict and score the holdout"),
    ("tracking", "MLflow import + store, own process"),
    ("tracking_wait", "of it, waited for after the fit and plots"),
    ("importance", "feature importance"),
    ("plots", "render the PNGs"),
    ("log", "log the MLflow run"),
    ("log_model", "of it, the model"),
)


def render_timings(timings: dict[str, float]) -> None:
    """Seconds per step of one run, and each step's share of the whole."""
    total = timings.get("total") or sum(timings.get(k, 0.0) for k, _ in TIMED_STEPS)
    table = Table(title="seconds per step", title_justify="left")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("share", justify="right")
    table.add_column("what")
    for key, what in TIMED_STEPS:
        if key in timings:
            share = "" if key in ("tracking", "log_model") or not total else \
                f"{timings[key] / total:.0%}"
            table.add_row(key, f"{timings[key]:.2f}", share, what)
    table.add_row("total", f"{total:.2f}", "100%", "train() start to end")
    out.print(table)


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


# -- tables that fit ----------------------------------------------------------------------------

FIXED, CUT, CUT_START, WRAP = "fixed", "cut", "cut_start", "wrap"


def cell_width(markup: str) -> int:
    """Terminal cells taken by a rich-markup string (escaped values count as shown)."""
    return Text.from_markup(markup).cell_len


@dataclass
class Col:
    """One column of a table that must fit: its cells (rich markup, values already escaped with
    ``safe``), how important it is and how it may give up width.

    ``priority``: 0 is never dropped; otherwise the highest number goes first when even the
    narrowest layout does not fit. ``fit``: FIXED is never narrowed (numbers, ids); CUT may be
    cut with … at the end down to ``shrink_to`` cells, CUT_START after a short leading word
    (labels whose end tells them apart); WRAP may wrap between words (never inside one)."""

    key: str  # how the user names it (--columns), shown when it is left out
    header: str
    cells: list[str] = field(default_factory=list)
    priority: float = 0.0
    fit: str = FIXED
    shrink_to: int = 10
    justify: str = "left"
    width: int = 0  # set by fit_columns

    @cached_property
    def natural(self) -> int:
        return max([cell_width(self.header), *(cell_width(c) for c in self.cells)])

    @cached_property
    def minimum(self) -> int:
        """The narrowest this column may be without harm: a header is never cut, a number never
        narrowed, a word never broken."""
        header = cell_width(self.header)
        if self.fit in (CUT, CUT_START):
            return min(self.natural, max(header, self.shrink_to))
        if self.fit == WRAP:
            words = [len(w) for c in self.cells for w in Text.from_markup(c).plain.split()]
            return min(self.natural, max([header, *words]))
        return self.natural


def table_overhead(columns: int) -> int:
    """Cells a rich Table of the default box and padding adds around ``columns`` columns: one
    space either side of each, a rule between them and at both edges."""
    return 3 * columns + 1 if columns else 0


def grid_overhead(columns: int) -> int:
    """Cells a borderless grid (:func:`fitted_table` with ``grid``) adds: two between columns."""
    return 2 * (columns - 1) if columns else 0


def fit_columns(columns: Sequence[Col], width: int, grid: bool = False
                ) -> tuple[list[Col], list[Col]]:
    """Lay ``columns`` out in ``width`` terminal cells: (kept, in their order, each with its
    ``width`` set; dropped, most important first).

    While even the narrowest layout is too wide, the least important column goes (the rightmost
    of equal priority; never one of priority 0). Then every kept column gets its natural width,
    and if that is too wide the CUT and WRAP ones give up width, least important first (the
    widest of equal priority first), down to their minimum. A column is never zero-width,
    never narrower than its header, and FIXED ones (numbers, run ids) are never narrowed."""
    overhead = grid_overhead if grid else table_overhead
    kept = list(columns)
    dropped: list[Col] = []
    order = {id(c): i for i, c in enumerate(columns)}

    def least_important_first(cols: Sequence[Col]) -> list[Col]:
        return sorted(cols, key=lambda c: (-c.priority, -order[id(c)]))

    while sum(c.minimum for c in kept) + overhead(len(kept)) > width:
        droppable = [c for c in kept if c.priority > 0]
        if not droppable:
            break
        gone = least_important_first(droppable)[0]
        kept.remove(gone)
        dropped.append(gone)
    for c in kept:
        c.width = c.natural
    excess = sum(c.width for c in kept) + overhead(len(kept)) - width
    for level in sorted({c.priority for c in kept}, reverse=True):
        # columns of equal priority share the cut: the widest gives a cell first
        same = [c for c in kept if c.priority == level and c.width > c.minimum]
        while excess > 0 and same:
            widest = max(same, key=lambda c: (c.width, order[id(c)]))
            widest.width -= 1
            excess -= 1
            same = [c for c in same if c.width > c.minimum]
    dropped.sort(key=lambda c: (c.priority, order[id(c)]))
    return kept, dropped


def fitted_table(columns: Sequence[Col], width: int, *, title: str | None = None,
                 caption: str | None = None, row_styles: Sequence[str | None] = (),
                 grid: bool = False) -> tuple[Table, list[Col]]:
    """A rich Table of ``columns`` fitted to ``width`` (see :func:`fit_columns`), and the
    columns left out. ``grid``: no borders or header, two cells between columns (one line per
    row, continuation lines indented under their column: ``doctor``)."""
    kept, dropped = fit_columns(columns, width, grid=grid)
    if grid:
        table = Table.grid(padding=(0, 2))
    else:
        table = Table(title=title, title_justify="left", caption=caption,
                      caption_justify="left")
    for c in kept:
        table.add_column(c.header, justify=c.justify, width=c.width,  # type: ignore[arg-type]
                         no_wrap=c.fit != WRAP,
                         overflow="fold" if c.fit == WRAP else "ellipsis")
    rows = max((len(c.cells) for c in kept), default=0)
    for i in range(rows):
        style = row_styles[i] if i < len(row_styles) else None
        table.add_row(*(_cell(c, i) for c in kept), style=style)
    return table, dropped


def _cell(column: Col, i: int) -> str | Text:
    text = column.cells[i] if i < len(column.cells) else ""
    if column.fit != CUT_START or cell_width(text) <= column.width:
        return text
    plain = Text.from_markup(text)
    # a short leading word (such as "param ") stays: "param …colsample_bytree"
    head = plain.plain.split(" ", 1)[0] + " " if " " in plain.plain[:7] else ""
    keep = column.width - 1 - len(head)
    return Text(head) + Text("…") + plain[len(plain) - keep:]


def left_out(dropped: Sequence[Col], width: int, how: str, what: str = "column") -> str | None:
    """The dim line under a table that says what did not fit and how to see it."""
    if not dropped:
        return None
    keys = [c.key for c in dropped]
    names = ", ".join(keys if len(keys) <= 8 else [*keys[:6], f"and {len(keys) - 6} more"])
    plural = what if len(dropped) == 1 else what + "s"
    return (f"[dim]{len(dropped)} more {plural} did not fit in {width} columns: {safe(names)}; "
            f"{how}[/]")


def backtest_table(windows: Sequence[dict[str, Any]], width: int,
                   title: str = "backtest: the recipe refitted at each forward cut-off") -> Table:
    """One row per window (train end, test window, rows, RMSE beside its own train mean,
    RMSE ÷ baseline, predicted ÷ actual total), then the mean and spread over windows."""
    import numpy as np

    def day(text: Any) -> str:
        return str(text)[:10] if text else ""

    def num(value: Any, fmt: str) -> str:
        return "n/a" if value is None or value != value else format(value, fmt)

    ratios = [w["rmse"] / w["baseline_rmse"] if w.get("baseline_rmse") else None
              for w in windows]
    cells: dict[str, list[str]] = {
        "window": [str(w.get("window", i + 1)) for i, w in enumerate(windows)],
        "train until": [day(w["train_end"]) for w in windows],
        "test from": [day(w["test_start"]) for w in windows],
        "test until": [day(w["test_end"]) for w in windows],
        "rows": [f"{w['rows']:,}" for w in windows],
        "RMSE": [num(w["rmse"], ".3f") for w in windows],
        "baseline": [num(w["baseline_rmse"], ".3f") for w in windows],
        "÷ baseline": [num(r, ".4f") for r in ratios],
        "pred ÷ actual": [num(w["total_ratio"], ".3f") for w in windows],
    }
    for key, column, fmt in (("rmse", "RMSE", ".3f"), ("baseline_rmse", "baseline", ".3f"),
                             ("total_ratio", "pred ÷ actual", ".3f")):
        values = np.array([w[key] for w in windows if w.get(key) is not None], dtype=float)
        sd = values.std(ddof=1) if len(values) > 1 else 0.0
        cells[column].append(f"{values.mean():{fmt}} ± {sd:{fmt}}" if len(values) else "n/a")
    finite = np.array([r for r in ratios if r is not None], dtype=float)
    cells["÷ baseline"].append(f"{finite.mean():.4f}" if len(finite) else "n/a")
    for key in ("window", "train until", "test from", "test until", "rows"):
        cells[key].append("mean ± SD" if key == "window" else "")
    priority = {"window": 0, "test from": 0, "RMSE": 0, "÷ baseline": 1, "pred ÷ actual": 1,
                "baseline": 2, "rows": 3, "test until": 4, "train until": 5}
    cols = [Col(k, k, v, priority=priority[k], fit=FIXED,
                justify="left" if k in ("window", "train until", "test from", "test until")
                else "right") for k, v in cells.items()]
    table, _ = fitted_table(cols, width, title=title,
                            caption="each window beside the train mean of its own training "
                            "rows; mean ± SD over windows",
                            row_styles=[None] * len(windows) + ["bold"])
    return table
