"""From a table's columns to what an estimator learns from: one home for column types.

A training table arrives as the warehouse exports it: numbers and flags, strings or categories
(``utm_source``), timestamps (``created_at``), and gaps. :class:`Featurizer` is a scikit-learn
transformer, fitted with the model and saved inside it (:class:`revcli.model.RevenueModel`), so
``predict`` applies exactly the encoding training learned:

- **numbers and flags** (bool, int, float) pass through as float32; a missing value stays NaN for
  estimators that handle it (XGBoost, histogram gradient boosting, random forests) and is
  otherwise replaced by the training median, with a ``<column>__missing`` indicator beside it;
- **categories** (strings, pandas categoricals): the levels seen on at least ``min_frequency``
  of the training rows are kept, the rest -- and any level first seen at predict time -- go to
  one ``__other__`` bucket (missing values to ``__missing__``). Estimators with native categories
  get a pandas categorical column with those fixed levels; the others get one 0/1 column per
  level (``<column>=<level>``);
- **timestamps** are never fed raw: they become calendar features ``<column>__month`` (months
  since 1970-01, so a trend can be learned), ``<column>__dayofweek`` (Monday 0) and
  ``<column>__hour``. The training window is kept: numbers where a timestamp was learned, text
  that is no date, and dates before the window by more than its own span (epoch milliseconds
  read as 1970) are refused (:class:`TimestampRefused`) instead of scored.

:func:`kind` names the type of a column; :func:`audit_columns` is the numeric view the leakage
audit ranks columns on.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from revcli.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

NUMBER, CATEGORY, DATETIME = "number", "category", "datetime"
OTHER, MISSING = "__other__", "__missing__"
RAW = "raw:"  # passthrough columns (revcli.strategies._two_stage.RAW)
# Levels kept as their own category: seen on at least this share of the training rows (and at
# most MAX_LEVELS of them), so a one-hot encoding stays small and rare levels do not overfit.
MIN_FREQUENCY = 0.005
MAX_LEVELS = 64
# How a timestamp is sent to a served model: ISO 8601 text (pandas: date_format="iso").
TIMESTAMP_FORMAT = "ISO 8601 text such as 2026-03-01T12:30:00 (pandas: to_json(date_format='iso'))"


class TimestampRefused(DataError, ValueError):
    """Values of a timestamp column that cannot be the feature the model learned."""


def _refuse(message: str) -> NoReturn:
    """Raise :class:`TimestampRefused`; under MLflow (its scoring server, pyfunc) also as an
    MlflowException with BAD_REQUEST, so ``mlflow models serve`` answers 400 with this one line
    instead of "an unexpected error" and a traceback. The server prepends the whole input table
    to the message of an MlflowException; the message keeps its one line."""
    mlflow_exceptions = sys.modules.get("mlflow.exceptions")
    if mlflow_exceptions is None:
        raise TimestampRefused(message)
    base = mlflow_exceptions.MlflowException

    class Refused(TimestampRefused, base):  # type: ignore[misc, valid-type]
        def __init__(self, text: str) -> None:
            base.__init__(self, text, error_code=mlflow_exceptions.BAD_REQUEST)

        @property
        def message(self) -> str:
            return str(self.__dict__.get("_line", ""))

        @message.setter
        def message(self, value: str) -> None:
            self.__dict__.setdefault("_line", value)

        def __str__(self) -> str:
            return self.message

    raise Refused(message)


def kind(dtype: Any) -> str | None:
    """The feature type of a pandas dtype: NUMBER, CATEGORY, DATETIME, or None (unsupported:
    complex numbers, bytes, nested values, timedeltas)."""
    from pandas.api import types as pdt

    if pdt.is_bool_dtype(dtype) or (pdt.is_numeric_dtype(dtype)
                                    and not pdt.is_complex_dtype(dtype)
                                    and not pdt.is_timedelta64_dtype(dtype)):
        return NUMBER
    if pdt.is_datetime64_any_dtype(dtype):
        return DATETIME
    import pandas as pd

    if (isinstance(dtype, pd.CategoricalDtype) or pdt.is_string_dtype(dtype)
            or pdt.is_object_dtype(dtype)):
        return CATEGORY
    return None


def _as_float(values: pd.Series) -> np.ndarray:
    import pandas as pd
    from pandas.api import types as pdt

    if not (pdt.is_numeric_dtype(values.dtype) or pdt.is_bool_dtype(values.dtype)):
        values = pd.to_numeric(values, errors="coerce")  # e.g. numbers that came as text (CSV)
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


_TRUE, _FALSE = frozenset({"true", "t", "yes"}), frozenset({"false", "f", "no"})


def parse_numbers(name: str, values: pd.Series) -> np.ndarray:
    """Numbers or flags that came as text ('True'/'False' in any case, '1', '2.5'; blanks and
    nulls are gaps) as float64; any other text is refused naming the column."""
    import pandas as pd

    text = values.astype("object").where(values.notna(), None)
    lowered = text.map(lambda v: v.strip().lower() if isinstance(v, str) else v)
    flags = lowered.map(lambda v: 1.0 if v in _TRUE else 0.0 if v in _FALSE else v)
    blank = flags.map(lambda v: isinstance(v, str) and not v)
    numbers = pd.to_numeric(flags.where(~blank, None), errors="coerce")
    bad = numbers.isna() & flags.notna() & ~blank
    if bad.any():
        from revcli.errors import DataError

        example = str(text[bad].iloc[0])[:40]
        raise DataError(f"column {name!r} was a number or flag at training but holds text "
                        f"that is neither on {int(bad.sum()):,} row(s) (e.g. {example!r}); fix "
                        "those values")
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def check_drift(X: pd.DataFrame, columns: Sequence[str]) -> None:
    """A feature column that appears more than once is ambiguous: refused naming it."""
    from collections import Counter

    counts = Counter(str(c) for c in X.columns)
    twice = [c for c in columns if counts[c] > 1]
    if twice:
        from revcli.errors import DataError

        raise DataError(f"column {twice[0]!r} appears {counts[twice[0]]} times in the table; "
                        "keep one of them")


def naive_utc(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC (a timezone-aware column is converted, a naive one kept; text,
    as a CSV or JSON request carries them, is parsed)."""
    import pandas as pd
    from pandas.api import types as pdt

    if not pdt.is_datetime64_any_dtype(values.dtype):
        values = pd.to_datetime(values, errors="coerce", utc=True)
    if getattr(values.dt, "tz", None) is not None:
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values


def calendar(values: pd.Series) -> dict[str, np.ndarray]:
    """Calendar features of a timestamp column: month index, day of week, hour."""
    stamp = naive_utc(values)
    month = (stamp.dt.year - 1970) * 12 + (stamp.dt.month - 1)
    return {"month": _as_float(month), "dayofweek": _as_float(stamp.dt.day_of_week),
            "hour": _as_float(stamp.dt.hour)}


def audit_columns(X: pd.DataFrame, ordered: np.ndarray,
                  rows: np.ndarray | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """One numeric column at a time per table column (of ``rows`` only, when given), for the
    leakage audit to rank: numbers as they are, a category as its level's share of orders on
    these rows, a timestamp as days since 1970. One column at a time, so a table of millions
    of rows never has all its columns as float64 at once."""
    import pandas as pd

    ordered = np.asarray(ordered, dtype=np.float64)
    for name in X.columns:
        values = X[name] if rows is None else X[name].iloc[rows]
        k = kind(values.dtype)
        if k == NUMBER:
            yield str(name), _as_float(values)
        elif k == DATETIME:
            yield str(name), _as_float((naive_utc(values) - pd.Timestamp("1970-01-01"))
                                       / pd.Timedelta(days=1))
        else:
            levels = values.astype("object").where(values.notna(), MISSING).to_numpy()
            rate = pd.Series(ordered).groupby(levels).transform("mean")
            yield str(name), rate.to_numpy(dtype=np.float64)


def as_text(values: pd.Series) -> pd.Series:
    """A category column as text, a gap as MISSING: what levels are counted and matched on."""
    return values.astype("object").where(values.notna(), MISSING).astype(str)


@dataclass
class ColumnStatistics:
    """What fitting the encoding needs to know of one column: its dtype and kind, the rows,
    whether it has gaps and (for imputation) its median, and for a category the count of each
    level (most frequent first). Sums of these over parts are the statistics of the whole."""

    name: str
    dtype: Any
    kind: str | None
    rows: int
    gaps: bool = False
    median: float | None = None
    counts: Any = None  # pd.Series: level -> rows, most frequent first
    window: tuple[str, str] | None = None  # a timestamp's (min, max), ISO 8601


def column_statistics(X: pd.DataFrame, medians: bool = True) -> list[ColumnStatistics]:
    """:class:`ColumnStatistics` of every column of a table in memory."""
    stats = []
    for name in X.columns:
        values = X[name]
        k = kind(values.dtype)
        stat = ColumnStatistics(str(name), values.dtype, k, len(values))
        if k == CATEGORY:
            stat.counts = as_text(values).value_counts()
        elif k == NUMBER:
            numbers = _as_float(values)
            gaps = np.isnan(numbers)
            stat.gaps = bool(gaps.any())
            if medians:  # every number's: a gap first seen at predict time is imputed
                stat.median = float(np.median(numbers[~gaps])) if (~gaps).any() else 0.0
        elif k == DATETIME:
            stamps = naive_utc(values).dropna()
            if len(stamps):  # the training window (predict refuses dates far before it)
                stat.window = (stamps.min().isoformat(), stamps.max().isoformat())
        stats.append(stat)
    return stats


class Featurizer(TransformerMixin, BaseEstimator):
    """Encode a table's feature columns for one estimator (see the module docstring).

    ``native_categories``: the estimator takes pandas categoricals itself (XGBoost with
    ``enable_categorical``, histogram gradient boosting); else categories are one-hot encoded.
    ``handles_missing``: the estimator takes NaN itself; else numbers are imputed with an
    indicator. ``passthrough``: table columns added as they are, named ``raw:<column>``, beside
    the encoding (what a classifier fitted elsewhere reads; not in ``feature_names_out_``).
    ``scale``: numbers (and calendar features) are standardised with the training
    mean and standard deviation, as linear models need (a month index near 500 beside 0/1 flags
    would otherwise dominate a penalised fit).
    """

    def __init__(self, native_categories: bool = False, handles_missing: bool = False,
                 scale: bool = False, min_frequency: float = MIN_FREQUENCY,
                 max_levels: int = MAX_LEVELS, passthrough: tuple[str, ...] = ()) -> None:
        self.native_categories = native_categories
        self.handles_missing = handles_missing
        self.scale = scale
        self.min_frequency = min_frequency
        self.max_levels = max_levels
        self.passthrough = passthrough

    def fit(self, X: pd.DataFrame, y: Any = None) -> Featurizer:
        return self.fit_statistics(column_statistics(X, medians=not self.handles_missing), X)

    def fit_statistics(self, stats: Sequence[ColumnStatistics],
                       X: pd.DataFrame | None = None) -> Featurizer:
        """Fit from per-column statistics (:func:`column_statistics` of a table in memory, or
        the same numbers aggregated over a cluster's parts): the one place the encoding is
        decided. ``X`` is needed only by ``scale`` (the encoded columns' means)."""
        import pandas as pd

        self.columns_ = [s.name for s in stats]
        self.kinds_: dict[str, str] = {}
        self.levels_: dict[str, list[str]] = {}
        self.medians_: dict[str, float] = {}
        self.missing_: list[str] = []
        self.windows_: dict[str, tuple[str, str]] = {}
        for stat in stats:
            if stat.kind is None:
                raise ValueError(f"column {stat.name!r} has dtype {stat.dtype}, which is not a "
                                 "number, flag, category or timestamp")
            self.kinds_[stat.name] = stat.kind
            if stat.kind == CATEGORY:
                self.levels_[stat.name] = self._levels(stat.counts, stat.rows)
            elif stat.kind == DATETIME and stat.window is not None:
                self.windows_[stat.name] = stat.window
            elif stat.kind == NUMBER and not self.handles_missing:
                # learned for every number: a gap first seen at predict time is imputed too
                # (with no indicator: the encoded columns are fixed at fit)
                self.medians_[stat.name] = (0.0 if stat.median is None
                                            or np.isnan(stat.median) else float(stat.median))
                if stat.gaps:
                    self.missing_.append(stat.name)
        self.scales_: dict[str, tuple[float, float]] = {}
        if self.scale:
            if X is None:
                raise ValueError("a scaled encoding is fitted from the table itself")
            encoded = self._encode(X)
            for column in self._scaled(encoded):
                values = encoded[column].to_numpy(dtype=np.float64)
                std = float(np.nanstd(values))
                self.scales_[column] = (float(np.nanmean(values)), std if std > 0 else 1.0)
        empty = pd.DataFrame({s.name: pd.Series([], dtype=s.dtype) for s in stats})
        self.feature_names_out_ = list(self._encode(empty).columns)
        self.n_features_in_ = len(stats)
        if X is not None:
            # evaluate's segments, decided here on the training rows (one-hot groups only
            # where these rows show the columns never are 1 together), never from an
            # evaluation file; a cluster-fitted encoding has none (evaluate falls back)
            from revcli.reports import segment_groups

            self.segments_ = segment_groups(X, levels=self.levels_)
        return self

    def _scaled(self, encoded: pd.DataFrame) -> list[str]:
        """Encoded columns that are quantities (not indicators or one-hot levels)."""
        return [c for c in encoded.columns
                if not c.endswith("__missing") and "=" not in c
                and str(encoded[c].dtype) != "category"]

    def _levels(self, counts: pd.Series, rows: int) -> list[str]:
        """The levels kept: ``counts`` is the value count of each level (as text, most
        frequent first) over ``rows`` rows."""
        keep = counts[counts >= max(1.0, self.min_frequency * rows)]
        return sorted(str(v) for v in keep.index[: self.max_levels])

    def _text(self, name: str, values: pd.Series) -> pd.Series:
        text = as_text(values)
        return text.where(text.isin(self.levels_[name]), OTHER)

    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        out: dict[str, Any] = {}
        for name in self.columns_:
            values = X[name]
            k = self.kinds_[name]
            if k == NUMBER:
                numbers = _as_float(values)
                if name in self.missing_:
                    gaps = np.isnan(numbers)
                    out[f"{name}__missing"] = gaps.astype(np.float32)
                    numbers = np.where(gaps, self.medians_[name], numbers)
                elif not self.handles_missing and name in self.medians_:
                    numbers = np.where(np.isnan(numbers), self.medians_[name], numbers)
                out[name] = numbers.astype(np.float32)
            elif k == DATETIME:
                values = self._timestamps(name, values)
                for part, numbers in calendar(values).items():
                    out[f"{name}__{part}"] = numbers.astype(np.float32)
            else:
                levels = [*self.levels_[name], OTHER]
                text = self._text(name, values)
                if self.native_categories:
                    out[name] = pd.Categorical(text, categories=levels)
                else:
                    for level in levels:
                        out[f"{name}={level}"] = (text == level).to_numpy(dtype=np.float32)
        frame = pd.DataFrame(out, index=X.index)
        for column, (mean, std) in getattr(self, "scales_", {}).items():
            frame[column] = ((frame[column] - mean) / std).astype(np.float32)
        return frame

    def _timestamps(self, name: str, values: pd.Series) -> pd.Series:
        """``values`` as naive UTC timestamps, refused when they cannot be what training saw:
        numbers (epoch seconds or milliseconds), text that is no date, or dates before the
        training window by more than its span (at least a day)."""
        import pandas as pd
        from pandas.api import types as pdt

        if pdt.is_numeric_dtype(values.dtype) or pdt.is_bool_dtype(values.dtype):
            sample = values.dropna().head(1).tolist()
            _refuse(f"column {name!r} holds numbers ({sample[0] if sample else 'all missing'}"
                    f") where the model learned a timestamp; send {TIMESTAMP_FORMAT}")
        stamps = naive_utc(values)
        unparsed = stamps.isna() & values.notna()
        if unparsed.any():
            _refuse(f"column {name!r} has {int(unparsed.sum()):,} value(s) that are no "
                    f"timestamp ({str(values[unparsed].iloc[0])[:40]!r}); send "
                    f"{TIMESTAMP_FORMAT}")
        window = getattr(self, "windows_", {}).get(name)
        if window is not None and stamps.notna().any():
            start, end = pd.Timestamp(window[0]), pd.Timestamp(window[1])
            span = max(end - start, pd.Timedelta(days=1))
            early = stamps < start - span
            if early.any():
                _refuse(f"column {name!r} has {int(early.sum()):,} timestamp(s) from "
                        f"{stamps[early].min():%Y-%m-%d %H:%M}, before the training window "
                        f"({start:%Y-%m-%d} to {end:%Y-%m-%d}) by more than its span: "
                        f"epoch numbers read as dates? send {TIMESTAMP_FORMAT}")
        return stamps

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "kinds_")
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise ValueError(f"the table lacks {len(missing)} feature column(s) the model "
                             f"needs: {', '.join(missing)}")
        check_drift(X, self.columns_)
        X = self._parse_flags(X)
        encoded = self._encode(X)
        if not self.handles_missing:
            self._refuse_new_gaps(encoded)
        for name in self.passthrough:  # as they are, for a classifier fitted elsewhere
            encoded[f"{RAW}{name}"] = X[name].to_numpy()
        return encoded

    def _parse_flags(self, X: pd.DataFrame) -> pd.DataFrame:
        """Number and flag columns that arrive as text (a CSV export, a JSON request: 'True',
        'false', '1', '2.5') parsed as the numbers training saw; text that is no number is
        refused naming the column, never silently turned into a gap."""
        from pandas.api import types as pdt

        parsed: dict[str, np.ndarray] = {}
        for name in self.columns_:
            values = X[name]
            if self.kinds_[name] != NUMBER or pdt.is_numeric_dtype(values.dtype) \
                    or pdt.is_bool_dtype(values.dtype):
                continue
            parsed[name] = parse_numbers(name, values)
        return X.assign(**parsed) if parsed else X

    def _refuse_new_gaps(self, encoded: pd.DataFrame) -> None:
        """A gap where training saw none: the encoding has no value learned for it (no median,
        no indicator column), and the estimator takes no NaN. Refused naming the column."""
        for column in encoded.columns:
            values = encoded[column]
            if str(values.dtype) == "category":
                continue
            gaps = int(np.isnan(values.to_numpy(dtype=np.float64)).sum())
            if gaps:
                from revcli.errors import DataError

                source = self.source_of(str(column))
                raise DataError(f"column {source!r} has {gaps:,} missing value(s), but the "
                                "model was trained without gaps in it and its estimator takes "
                                "none; fill them, or train on data with gaps in that column")

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return np.asarray(self.feature_names_out_, dtype=object)

    def by_source(self, values: Sequence[float]) -> dict[str, float]:
        """Per-encoded-column ``values`` summed back to the table's columns (a one-hot level, a
        gap indicator, a calendar part count for the column they came from)."""
        check_is_fitted(self, "feature_names_out_")
        totals = dict.fromkeys(self.columns_, 0.0)
        for encoded, value in zip(self.feature_names_out_, values, strict=True):
            totals[self.source_of(encoded)] += float(value)
        return totals

    def source_of(self, encoded: str) -> str:
        """The table column an encoded column came from."""
        matches = [c for c in self.columns_
                   if encoded == c or encoded.startswith((f"{c}__", f"{c}="))]
        return max(matches, key=len)

    def describe(self) -> dict[str, Any]:
        """What the encoding learned, for model.json and --json."""
        check_is_fitted(self, "kinds_")
        return {"kinds": dict(self.kinds_), "levels": {k: list(v) for k, v in
                                                       self.levels_.items()},
                "imputed": {k: self.medians_[k] for k in self.missing_ if k in self.medians_},
                "windows": {k: list(v) for k, v in getattr(self, "windows_", {}).items()},
                "native_categories": self.native_categories, "scaled": sorted(self.scales_),
                "encoded_columns": len(self.feature_names_out_)}


def for_estimator(capabilities: Mapping[str, bool]) -> Featurizer:
    """The featurizer for an estimator with these capabilities (revcli.estimators)."""
    return Featurizer(native_categories=bool(capabilities.get("native_categories")),
                      handles_missing=bool(capabilities.get("handles_missing")),
                      scale=bool(capabilities.get("needs_scaling")))
