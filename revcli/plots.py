"""Diagnostic plots as PNG files (matplotlib, headless).

Each function takes arrays and a path, writes the figure atomically and returns the path; none
shows a window. Scatter plots draw at most ``MAX_POINTS`` points (a fixed-seed sample), because
half a million dots hide more than they show.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from revcli import atomic

if TYPE_CHECKING:
    from revcli.pipeline import Importance

MAX_POINTS = 10_000


def _figure(width: float, height: float) -> tuple[Any, Any]:
    """A figure and its axes, outside pyplot: no global backend switch, no figure registry,
    safe in a thread (how matplotlib recommends drawing in a server)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _sample(n: int, seed: int = 0) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))


def printable(text: Any) -> str:
    """Text as a plot draws it: control characters (a column name holding a terminal escape)
    shown escaped (``\\x1b``), so no font lacks their glyph and no raw escape reaches a
    warning on the user's terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in str(text))


def save_figure(fig: Any, path: Path) -> Path:
    """Write a figure (ours, or one drawn by optuna.visualization.matplotlib) as a PNG,
    atomically, and close it. Every text on it is made :func:`printable` first."""
    import sys
    import warnings

    from matplotlib.text import Text

    for artist in fig.findobj(Text):
        artist.set_text(printable(artist.get_text()))
    path = Path(path)
    with atomic.atomic_path(path, suffix=".png") as tmp, warnings.catch_warnings():
        # Labels drawn from data at draw time (tick labels of names) can still lack a glyph:
        # matplotlib's warning would print the raw character; the PNG shows an empty box.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        fig.savefig(tmp, dpi=90, bbox_inches="tight", format="png")
    if "matplotlib.pyplot" in sys.modules:  # a figure pyplot made (optuna's) is freed by pyplot
        sys.modules["matplotlib.pyplot"].close(fig)
    return path


def residuals(y: np.ndarray, pred: np.ndarray, path: Path, title: str = "") -> Path:
    """Residual (actual - predicted) against predicted."""
    idx = _sample(len(y))
    fig, ax = _figure(7, 4.5)
    ax.scatter(pred[idx], (y - pred)[idx], s=4, alpha=0.25, color="#1f77b4", linewidths=0)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("predicted revenue ($)")
    ax.set_ylabel("actual - predicted ($)")
    ax.set_title(title or "Residuals vs predicted")
    return save_figure(fig, path)


def predicted_vs_actual(y: np.ndarray, pred: np.ndarray, path: Path, title: str = "") -> Path:
    """Predicted against actual; order values sit at a few price points, so y is jittered."""
    idx = _sample(len(y))
    jitter = np.random.default_rng(1).uniform(-0.6, 0.6, len(idx))
    fig, ax = _figure(6, 5.5)
    ax.scatter(y[idx] + jitter, pred[idx], s=4, alpha=0.25, color="#d62728", linewidths=0)
    hi = float(max(np.max(y, initial=0.0), np.max(pred, initial=0.0))) * 1.05 or 1.0
    ax.plot([0, hi], [0, hi], color="black", linewidth=0.8, linestyle="--", label="perfect")
    ax.set_xlim(-2, hi)
    ax.set_ylim(-2, hi)
    ax.set_xlabel("actual revenue ($, jittered)")
    ax.set_ylabel("predicted revenue ($)")
    ax.set_title(title or "Predicted vs actual")
    ax.legend(loc="upper left")
    return save_figure(fig, path)


def feature_importance(names: Sequence[str], importance: np.ndarray, path: Path,
                       title: str = "", xlabel: str = "RMSE increase when shuffled ($)") -> Path:
    """Horizontal bars, most important at the top."""
    order = np.argsort(importance)
    fig, ax = _figure(7, 0.35 * len(names) + 1.2)
    labels = np.asarray([printable(n) for n in names])
    ax.barh(labels[order], np.asarray(importance)[order], color="#2ca02c")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title or "Permutation feature importance")
    return save_figure(fig, path)


def lorenz(y: np.ndarray, pred: np.ndarray, path: Path, title: str = "") -> Path:
    """Cumulative share of actual revenue against share of sessions, ranked by prediction, with
    the perfect ranking and a random one (the diagonal) for reference."""
    from revcli import metrics

    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    fig, ax = _figure(6, 5.5)
    grid = np.linspace(0.0, 1.0, 501)
    for scores, label, style in ((y, "perfect ranking", ":"), (pred, "model", "-")):
        x, c = metrics.lorenz_curve(y, scores)
        ax.plot(grid, np.interp(grid, x, c), linestyle=style, linewidth=1.6, label=label)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--",
            label="random / constant (baseline)")
    gini = metrics.normalized_gini(y, pred)
    top = metrics.top_share(y, pred)
    ax.set_xlabel("share of sessions, highest predicted first")
    ax.set_ylabel("share of actual revenue")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "Cumulative revenue (Lorenz) curve")
    ax.legend(loc="lower right", title=f"normalized Gini {gini:.3f}; top 10 % hold "
              f"{top * 100:.1f} %" if np.isfinite(gini) else None)
    return save_figure(fig, path)


def calibration(y: np.ndarray, pred: np.ndarray, path: Path, title: str = "",
                bins: int = 10) -> Path:
    """Mean predicted and mean actual revenue per predicted decile (error bars: ±2 standard
    errors of the actual mean)."""
    from revcli.reports import calibration_bins

    table = calibration_bins(y, pred, bins)
    x = np.array([b.bin for b in table])
    fig, ax = _figure(7, 4.5)
    ax.errorbar(x, [b.actual_mean for b in table],
                yerr=[2 * b.actual_se if np.isfinite(b.actual_se) else 0.0 for b in table],
                marker="o", capsize=3, label="actual mean")
    ax.plot(x, [b.predicted_mean for b in table], marker="s", linestyle="--",
            label="predicted mean")
    ax.set_xticks(x)
    ax.set_xlabel(f"predicted {'decile' if bins == 10 else 'bin'} (1 = lowest predictions)")
    ax.set_ylabel("mean revenue ($)")
    ax.set_title(title or "Calibration by predicted decile")
    ax.legend(loc="upper left")
    return save_figure(fig, path)


def training_set(directory: Path, label: str, y: np.ndarray, pred: np.ndarray,
                 importance: Importance) -> dict[str, Path]:
    """The three plots of every trained model: residuals, predicted vs actual, importance;
    ``label`` names the rows in the titles (e.g. "two_stage: all test sessions")."""
    directory = Path(directory)
    values = importance.values
    return {
        "residuals": residuals(y, pred, directory / "residuals.png",
                               title=f"Residuals vs predicted ({label})"),
        "predicted_vs_actual": predicted_vs_actual(
            y, pred, directory / "predicted_vs_actual.png",
            title=f"Predicted vs actual ({label})"),
        "feature_importance": feature_importance(
            list(values), np.array(list(values.values())),
            directory / "feature_importance.png", title=f"{importance.title} ({label})",
            xlabel=importance.unit),
    }


def by_period(periods: Sequence[str], actual: Sequence[float], predicted: Sequence[float],
              path: Path, title: str = "", unit: str = "revenue") -> Path:
    """Actual and predicted total ``unit`` per period, in time order, and predicted ÷ actual
    beneath: where a model loses a trend, the two lines part."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    x = np.arange(len(periods))
    actual_arr = np.asarray(actual, dtype=np.float64)
    predicted_arr = np.asarray(predicted, dtype=np.float64)
    top.plot(x, actual_arr, marker="o", label="actual", color="black")
    top.plot(x, predicted_arr, marker="o", label="predicted", color="#1f77b4")
    top.set_ylabel(f"total {unit} per period ($)")
    top.legend()
    top.set_title(title or f"Actual vs predicted {unit} per period")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(actual_arr > 0, predicted_arr / actual_arr, np.nan)
    bottom.axhline(1.0, color="black", linewidth=0.8)
    bottom.plot(x, ratio, marker="o", color="#d62728")
    bottom.set_ylabel("predicted ÷ actual")
    step = max(1, len(periods) // 12)
    bottom.set_xticks(x[::step], [str(p) for p in periods][::step], rotation=45, ha="right")
    return save_figure(fig, path)
