"""Error analysis by segment, and plain-text table formats (Markdown, CSV).

Segments come from the table's own columns, decided once on the training rows and stored with
the model (``Featurizer.segments_``), so a small evaluation file never re-decides them: every
text or categorical column (the levels the encoding kept, the rest ``__other__``), numeric
columns with few distinct values (hour of day) in bands, timestamps by period (week, month,
quarter, in time order), and the binary columns, grouped by their names:

- **one-hot groups**: binary columns that share a name prefix ending in ``_`` (``utm_source_``,
  ``landing_page_``) and are never 1 together. The tables were made with ``drop_first``, so the
  rows where every column of a group is 0 are one more level: the dropped one. Its name is not in
  the data; :data:`DROPPED_LEVELS` names the ones known for this data set (``landing_page``:
  ``/home``; ``utm_source``: bsearch *and* direct/organic, which drop_first merged), any other
  group says "none of <group>_*".
- a lone binary column whose prefix is a known one-hot group (``device_type_mobile``) is a
  one-hot group of one column (levels ``mobile`` and ``desktop``);
- any other binary column (``is_repeat_session``, ``is_weekend``) is a flag with levels yes/no.

Converters also get their error by band of the actual order value.
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
    """One segmenting variable, decided once from the training rows and stored with the model
    (``Featurizer.segments_``): a one-hot group (``columns`` with their ``levels``), a flag, a
    category (its kept levels and ``__other__``), a numeric column in bands (``edges``: each
    band's lowest value), or a timestamp (segmented by period at evaluation)."""

    name: str
    kind: str  # ONE_HOT, FLAG, CATEGORY, BANDS or TIME
    columns: tuple[str, ...]
    levels: tuple[str, ...]
    dropped: str | None  # label of the all-zero level of a one-hot group / a flag's "no"
    edges: tuple[float, ...] = ()


ONE_HOT, FLAG, CATEGORY, BANDS, TIME = "one-hot", "flag", "category", "bands", "time"
# A numeric column with at most this many distinct training values (hour of day) is banded;
# into at most MAX_BANDS bands of about equal rows.
MAX_DISTINCT = 24
MAX_BANDS = 6
PERIODS = {"week": "W", "month": "M", "quarter": "Q"}


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
    kind: str = FLAG

    def to_dict(self) -> dict[str, Any]:
        data = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}
        data["segment"] = self.group
        return data


def _is_binary(values: np.ndarray) -> bool:
    if values.dtype == bool:
        return True
    if not np.issubdtype(values.dtype, np.number) or len(values) == 0:
        return False
    return bool(np.isin(values, (0, 1)).all())


def _prefixes(name: str) -> list[str]:
    """Every prefix of ``name`` that ends in ``_`` and leaves a non-empty level, longest first."""
    return [name[:i + 1] for i in range(len(name) - 2, -1, -1) if name[i] == "_"]


def segment_groups(frame: pd.DataFrame, exclude: Sequence[str] = (),
                   levels: dict[str, list[str]] | None = None,
                   one_hot: bool = True) -> list[Group]:
    """The segmenting variables of ``frame`` -- the TRAINING rows (revcli.features.Featurizer
    calls it at fit and stores the result with the model, so a small evaluation file never
    re-decides them): every text or categorical column (``levels``: the levels the encoding
    kept; the rest are ``__other__``), binary columns as flags, or as one-hot groups where
    columns sharing a name prefix are never 1 together on these rows (``one_hot=False``: never
    group), numeric columns with few distinct values in bands, and timestamps."""
    import pandas as pd
    from pandas.api import types as pdt

    from revcli.data import ORDER_FLAG, TARGET, is_id_column
    from revcli.features import CATEGORY as CAT
    from revcli.features import DATETIME, NUMBER, OTHER
    from revcli.features import kind as kind_of

    skip = {TARGET, ORDER_FLAG, *exclude}
    usable = [str(c) for c in frame.columns if str(c) not in skip and not is_id_column(str(c))]
    kinds = {c: kind_of(frame[c].dtype) for c in usable}
    binary = {c: frame[c].to_numpy() for c in usable
              if kinds[c] == NUMBER and _is_binary(frame[c].to_numpy())}
    groups: list[Group] = []
    assigned: set[str] = set()
    if one_hot:
        by_prefix: dict[str, list[str]] = {}
        for name in binary:
            for prefix in _prefixes(name):
                by_prefix.setdefault(prefix, []).append(name)
        for prefix in sorted(by_prefix, key=len, reverse=True):
            members = [c for c in by_prefix[prefix] if c not in assigned]
            if len(members) < 2:
                continue
            stacked = np.column_stack([binary[c].astype(np.int64) for c in members])
            if stacked.sum(axis=1).max() > 1:  # not exclusive: separate flags
                continue
            groups.append(_one_hot(prefix, members))
            assigned.update(members)
    for name in usable:
        if name in assigned:
            continue
        if name in binary:
            known = (next((p for p in _prefixes(name) if p[:-1] in DROPPED_LEVELS), None)
                     if one_hot else None)
            groups.append(_one_hot(known, [name]) if known is not None else
                          Group(name=name, kind=FLAG, columns=(name,), levels=("yes",),
                                dropped="no"))
        elif kinds[name] == CAT:
            if levels is not None and name in levels:
                kept = list(levels[name])
            else:
                counts = frame[name].astype("object").value_counts()
                kept = sorted(str(v) for v in counts.index[:MAX_DISTINCT])
            groups.append(Group(name=name, kind=CATEGORY, columns=(name,),
                                levels=(*kept, OTHER), dropped=None))
        elif kinds[name] == DATETIME:
            groups.append(Group(name=name, kind=TIME, columns=(name,), levels=(),
                                dropped=None))
        elif kinds[name] == NUMBER and pdt.is_numeric_dtype(frame[name].dtype):
            counts = pd.Series(frame[name]).value_counts().sort_index()
            if 2 < len(counts) <= MAX_DISTINCT:
                edges, labels = _bands(counts)
                groups.append(Group(name=name, kind=BANDS, columns=(name,),
                                    levels=tuple(labels), dropped=None, edges=tuple(edges)))
    order = {str(c): i for i, c in enumerate(frame.columns)}
    return sorted(groups, key=lambda g: order[g.columns[0]])


def _bands(counts: pd.Series) -> tuple[list[float], list[str]]:
    """Bands of about equal rows over sorted distinct values (with their row counts): each
    band's lowest value and its label ("10-13")."""
    values = [float(v) for v in counts.index]
    if len(values) <= MAX_BANDS:
        return values, [f"{v:g}" for v in values]
    share = np.cumsum(counts.to_numpy(dtype=np.float64)) / counts.sum()
    band = np.minimum((share * MAX_BANDS - 1e-9).astype(int), MAX_BANDS - 1)
    edges, labels = [], []
    for b in dict.fromkeys(band.tolist()):
        members = [v for v, k in zip(values, band, strict=True) if k == b]
        edges.append(members[0])
        labels.append(f"{members[0]:g}" if len(members) == 1
                      else f"{members[0]:g}-{members[-1]:g}")
    return edges, labels


def _one_hot(prefix: str, members: list[str]) -> Group:
    name = prefix[:-1]
    return Group(name=name, kind=ONE_HOT, columns=tuple(members),
                 levels=tuple(c[len(prefix):] for c in members),
                 dropped=DROPPED_LEVELS.get(name, f"none of {prefix}* (dropped level)"))


def _masks(group: Group, frame: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    if group.kind == TIME:
        return []
    if group.kind == CATEGORY:
        from revcli.features import MISSING, OTHER

        values = frame[group.columns[0]]
        text = values.astype("object").where(values.notna(), MISSING).astype(str).to_numpy()
        known = text.copy()
        known[~np.isin(text, group.levels)] = OTHER
        return [(level, known == level) for level in group.levels]
    if group.kind == BANDS:
        values = pd_numbers(frame[group.columns[0]])
        index = np.searchsorted(np.asarray(group.edges), values, side="right") - 1
        index = np.where(np.isnan(values), -2, np.maximum(index, 0))
        out = [(level, index == i) for i, level in enumerate(group.levels)]
        return out + ([("missing", index == -2)] if (index == -2).any() else [])
    cols = [np.nan_to_num(pd_numbers(frame[c])).astype(bool) for c in group.columns]
    out = list(zip(group.levels, cols, strict=True))
    rest = ~np.logical_or.reduce(cols)
    if group.dropped is not None and rest.any():
        out.append((group.dropped, rest))
    return out


def pd_numbers(values: Any) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _row(group: str, level: str, ys: np.ndarray, ps: np.ndarray, baseline_value: float,
         min_rows: int, kind: str) -> SegmentRow:
    n = len(ys)
    base_rmse = metrics.rmse(ys, np.full_like(ys, baseline_value))
    model_rmse = metrics.rmse(ys, ps)
    return SegmentRow(
        group=group, level=level, rows=n, conversion=float(np.mean(ys > 0)),
        actual_mean=float(ys.mean()), predicted_mean=float(ps.mean()), rmse=model_rmse,
        mae=metrics.mae(ys, ps), total_ratio=metrics.total_ratio(ys, ps),
        baseline_rmse=base_rmse, rmse_vs_baseline=metrics.ratio(model_rmse, base_rmse),
        few_rows=n < min_rows, kind=kind)


def segment_table(frame: pd.DataFrame, y: np.ndarray, pred: np.ndarray, baseline_value: float,
                  groups: Sequence[Group] | None = None, sort: str = "vs_baseline",
                  min_rows: int = MIN_SEGMENT_ROWS) -> list[SegmentRow]:
    """Errors of ``pred`` against ``y`` per level of each group, the worst first.

    ``frame``, ``y`` and ``pred`` are the evaluation rows, aligned; ``groups`` the plan decided
    at training (default: decided from ``frame`` itself). ``rmse_vs_baseline`` is the model's
    RMSE divided by the RMSE of ``baseline_value`` (the train mean) on the same rows: above 1
    the model is worse than the mean there. ``sort``: ``vs_baseline`` (default), ``rmse``,
    ``mae`` or ``bias`` (|log total_ratio|). Segments under ``min_rows`` rows come last. Time
    groups are left to :func:`time_table`.
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
        if not all(c in frame.columns for c in group.columns):
            continue
        for level, mask in _masks(group, frame):
            if mask.any():
                rows.append(_row(group.name, level, y[mask], pred[mask], baseline_value,
                                 min_rows, group.kind))

    def badness(row: SegmentRow) -> float:
        if sort == "bias":
            ratio = row.total_ratio
            if not math.isfinite(ratio):  # no revenue in the segment: no bias to speak of
                return -math.inf
            return math.inf if ratio <= 0 else abs(math.log(ratio))
        value = {"vs_baseline": row.rmse_vs_baseline, "rmse": row.rmse, "mae": row.mae}[sort]
        return value if math.isfinite(value) else -math.inf

    return sorted(rows, key=lambda r: (r.few_rows, -badness(r), -r.rows))


def time_table(times: Any, y: np.ndarray, pred: np.ndarray, baseline_value: float,
               column: str, period: str = "month",
               min_rows: int = MIN_SEGMENT_ROWS) -> list[SegmentRow]:
    """Errors per ``period`` (week, month, quarter) of timestamp column ``column``, in time
    order: rows, actual and predicted mean, predicted ÷ actual total, RMSE ÷ baseline. A model
    that loses a trend shows it here as a predicted ÷ actual that drifts from 1."""
    import pandas as pd

    from revcli.features import naive_utc

    if period not in PERIODS:
        from revcli.errors import ConfigError

        raise ConfigError(f"unknown --period {period!r}; choose one of {', '.join(PERIODS)}")
    stamps = naive_utc(pd.Series(times).reset_index(drop=True))
    keys = stamps.dt.to_period(PERIODS[period])
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    rows = []
    codes, uniques = pd.factorize(keys, sort=True)
    for i, key in enumerate(uniques):
        mask = codes == i
        rows.append(_row(f"{column} ({period})", str(key), y[mask], pred[mask], baseline_value,
                         min_rows, TIME))
    return rows


def order_value_bands(y: np.ndarray, order_value: np.ndarray, mean_order_value: float,
                      bands: int = 4, min_rows: int = MIN_SEGMENT_ROWS) -> list[SegmentRow]:
    """Converters' error by band of their actual order value (are high-value orders harder to
    predict?): the order value predicted for a converting session (the one definition of
    ``conv_*``) beside the train mean order value, bands of about equal converters, lowest
    value first."""
    y = np.asarray(y, dtype=np.float64)
    conv = y > 0
    ys, ps = y[conv], np.asarray(order_value, dtype=np.float64)[conv]
    if not len(ys):
        return []
    import pandas as pd

    edges, labels = _bands(pd.Series(ys).value_counts().sort_index()) if len(
        np.unique(ys)) > bands else ([float(v) for v in np.unique(ys)],
                                     [f"{v:g}" for v in np.unique(ys)])
    index = np.maximum(np.searchsorted(np.asarray(edges), ys, side="right") - 1, 0)
    return [_row("order value (converters)", f"${label}", ys[index == i], ps[index == i],
                 mean_order_value, min_rows, BANDS)
            for i, label in enumerate(labels) if (index == i).any()]


def worst_rows(frame: pd.DataFrame, y: np.ndarray, pred: np.ndarray, n: int) -> list[dict[str,
                                                                                         Any]]:
    """The ``n`` rows with the largest absolute error: every column of ``frame`` (id columns,
    features) beside ``actual``, ``predicted`` and ``error`` (predicted - actual)."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if n <= 0 or not len(y):
        return []
    order = np.argsort(-np.abs(pred - y), kind="stable")[:n]
    out = []
    for i in order:
        record = {str(k): _plain(v) for k, v in frame.iloc[int(i)].items()}
        record.update({"actual": float(y[i]), "predicted": float(pred[i]),
                       "error": float(pred[i] - y[i])})
        out.append(record)
    return out


def _plain(value: Any) -> Any:
    """A cell as a JSON-able value (timestamps as ISO text, numpy scalars as Python's)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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
