"""Error analysis by segment, and plain-text table formats (Markdown, CSV).

Segments come from the table's binary columns, grouped by their names, so nothing here lists the
real table's 12 features and an extra one-hot column just works:

- **one-hot groups**: binary columns that share a name prefix ending in ``_`` (``utm_source_``,
  ``landing_page_``) and are never 1 together. The tables were made with ``drop_first``, so the
  rows where every column of a group is 0 are one more level: the dropped one. Its name is not in
  the data; :data:`DROPPED_LEVELS` names the ones known for this data set (``landing_page``:
  ``/home``; ``utm_source``: bsearch *and* direct/organic, which drop_first merged), any other
  group says "none of <group>_*".
- a lone binary column whose prefix is a known one-hot group (``device_type_mobile``) is a
  one-hot group of one column (levels ``mobile`` and ``desktop``);
- any other binary column (``is_repeat_session``, ``is_weekend``) is a flag with levels yes/no.

Non-binary columns (hour, depth) are not segmented.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from revcli import metrics

if TYPE_CHECKING:
    import pandas as pd

# Names of the all-zero level of the one-hot groups of this data set (drop_first removed them).
DROPPED_LEVELS: dict[str, str] = {
    "landing_page": "/home",
    "utm_source": "bsearch or direct/organic",
    "device_type": "desktop",
}
# Segments with fewer rows are listed after the others: their errors are mostly noise.
MIN_SEGMENT_ROWS = 30
SEGMENT_SORTS = ("vs_baseline", "rmse", "mae", "bias")


@dataclass(frozen=True)
class Group:
    """One segmenting variable: a one-hot group (``columns`` with their ``levels``) or a flag."""

    name: str
    kind: str  # "one-hot" or "flag"
    columns: tuple[str, ...]
    levels: tuple[str, ...]
    dropped: str | None  # label of the all-zero level of a one-hot group


@dataclass(frozen=True)
class SegmentRow:
    group: str
    level: str
    rows: int
    conversion: float
    actual_mean: float
    predicted_mean: float
    rmse: float
    mae: float
    total_ratio: float
    baseline_rmse: float
    rmse_vs_baseline: float
    few_rows: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def _is_binary(values: np.ndarray) -> bool:
    if values.dtype == bool:
        return True
    if not np.issubdtype(values.dtype, np.number) or len(values) == 0:
        return False
    return bool(np.isin(values, (0, 1)).all())


def _prefixes(name: str) -> list[str]:
    """Every prefix of ``name`` that ends in ``_`` and leaves a non-empty level, longest first."""
    return [name[:i + 1] for i in range(len(name) - 2, -1, -1) if name[i] == "_"]


def segment_groups(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> list[Group]:
    """The segmenting variables of ``frame``, derived from its binary columns' names."""
    from revcli.data import ORDER_FLAG, TARGET, is_id_column

    skip = {TARGET, ORDER_FLAG, *exclude}
    binary = {str(c): frame[c].to_numpy() for c in frame.columns
              if str(c) not in skip and not is_id_column(str(c))
              and _is_binary(frame[c].to_numpy())}
    by_prefix: dict[str, list[str]] = {}
    for name in binary:
        for prefix in _prefixes(name):
            by_prefix.setdefault(prefix, []).append(name)

    assigned: set[str] = set()
    groups: list[Group] = []
    for prefix in sorted(by_prefix, key=len, reverse=True):
        members = [c for c in by_prefix[prefix] if c not in assigned]
        if len(members) < 2:
            continue
        stacked = np.column_stack([binary[c].astype(np.int64) for c in members])
        if stacked.sum(axis=1).max() > 1:  # not exclusive: separate flags (is_repeat, is_weekend)
            continue
        groups.append(_one_hot(prefix, members))
        assigned.update(members)
    for name in binary:
        if name in assigned:
            continue
        known = next((p for p in _prefixes(name) if p[:-1] in DROPPED_LEVELS), None)
        if known is not None:
            groups.append(_one_hot(known, [name]))
        else:
            groups.append(Group(name=name, kind="flag", columns=(name,), levels=("yes",),
                                dropped="no"))
    order = {str(c): i for i, c in enumerate(frame.columns)}
    return sorted(groups, key=lambda g: order[g.columns[0]])


def _one_hot(prefix: str, members: list[str]) -> Group:
    name = prefix[:-1]
    return Group(name=name, kind="one-hot", columns=tuple(members),
                 levels=tuple(c[len(prefix):] for c in members),
                 dropped=DROPPED_LEVELS.get(name, f"none of {prefix}* (dropped level)"))


def _masks(group: Group, frame: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    cols = [frame[c].to_numpy().astype(bool) for c in group.columns]
    out = list(zip(group.levels, cols, strict=True))
    rest = ~np.logical_or.reduce(cols)
    if group.dropped is not None and rest.any():
        out.append((group.dropped, rest))
    return out


def segment_table(frame: pd.DataFrame, y: np.ndarray, pred: np.ndarray, baseline_value: float,
                  groups: Sequence[Group] | None = None, sort: str = "vs_baseline",
                  min_rows: int = MIN_SEGMENT_ROWS) -> list[SegmentRow]:
    """Errors of ``pred`` against ``y`` per level of each group, the worst first.

    ``frame``, ``y`` and ``pred`` are the evaluation rows, aligned. ``rmse_vs_baseline`` is the
    model's RMSE divided by the RMSE of ``baseline_value`` (the train mean) on the same rows: above
    1 the model is worse than the mean there. ``sort``: ``vs_baseline`` (default), ``rmse``,
    ``mae`` or ``bias`` (|log total_ratio|). Segments under ``min_rows`` rows come last.
    """
    if sort not in SEGMENT_SORTS:
        from revcli.errors import ConfigError

        raise ConfigError(f"unknown segment sort {sort!r}; choose one of "
                          f"{', '.join(SEGMENT_SORTS)}")
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    groups = segment_groups(frame) if groups is None else groups
    rows = []
    for group in groups:
        for level, mask in _masks(group, frame):
            n = int(mask.sum())
            if n == 0:
                continue
            ys, ps = y[mask], pred[mask]
            base_rmse = metrics.rmse(ys, np.full_like(ys, baseline_value))
            model_rmse = metrics.rmse(ys, ps)
            rows.append(SegmentRow(
                group=group.name, level=level, rows=n, conversion=float(np.mean(ys > 0)),
                actual_mean=float(ys.mean()), predicted_mean=float(ps.mean()), rmse=model_rmse,
                mae=metrics.mae(ys, ps), total_ratio=metrics.total_ratio(ys, ps),
                baseline_rmse=base_rmse,
                rmse_vs_baseline=metrics.ratio(model_rmse, base_rmse),
                few_rows=n < min_rows))

    def badness(row: SegmentRow) -> float:
        if sort == "bias":
            ratio = row.total_ratio
            if not math.isfinite(ratio):  # no revenue in the segment: no bias to speak of
                return -math.inf
            return math.inf if ratio <= 0 else abs(math.log(ratio))
        value = {"vs_baseline": row.rmse_vs_baseline, "rmse": row.rmse, "mae": row.mae}[sort]
        return value if math.isfinite(value) else -math.inf

    return sorted(rows, key=lambda r: (r.few_rows, -badness(r), -r.rows))


# -- plain-text table formats ------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _cell(value: Any) -> str:
    """A value as text for a Markdown or CSV cell; control characters (terminal escape
    sequences in a hostile name) are written as escapes, never raw."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))


def to_markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` inside cells escaped)."""
    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(_cell(c).replace("|", "\\|").replace("\n", " ")
                                 for c in cells) + " |"

    return "\n".join([line(headers), "|" + "|".join("---" for _ in headers) + "|",
                      *(line(r) for r in rows)]) + "\n"


def to_csv(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_cell(c) for c in row])
    return buf.getvalue()


@dataclass(frozen=True)
class CalibrationBin:
    """One bin of sessions ranked by prediction: mean predicted vs mean actual revenue."""

    bin: int
    rows: int
    predicted_min: float
    predicted_max: float
    predicted_mean: float
    actual_mean: float
    actual_se: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_bins(y: np.ndarray, pred: np.ndarray, bins: int = 10) -> list[CalibrationBin]:
    """Sessions ranked by prediction and cut into ``bins`` equal-count groups (deciles by
    default). A calibrated model has predicted mean ~ actual mean in every bin."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    order = np.argsort(pred, kind="stable")
    out = []
    for i, idx in enumerate(np.array_split(order, min(bins, len(order))), start=1):
        if len(idx) == 0:
            continue
        ys, ps = y[idx], pred[idx]
        se = float(ys.std(ddof=1) / math.sqrt(len(ys))) if len(ys) > 1 else math.nan
        out.append(CalibrationBin(bin=i, rows=len(idx), predicted_min=float(ps.min()),
                                  predicted_max=float(ps.max()), predicted_mean=float(ps.mean()),
                                  actual_mean=float(ys.mean()), actual_se=se))
    return out
