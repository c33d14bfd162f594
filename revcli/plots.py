"""Diagnostic plots as PNG files (matplotlib, headless).

Each function takes arrays and a path, writes the figure atomically and returns the path; none
shows a window. Scatter plots draw at most ``MAX_POINTS`` points (a fixed-seed sample), because
half a million dots hide more than they show.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from revcli import atomic

MAX_POINTS = 10_000


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _sample(n: int, seed: int = 0) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    with atomic.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def save_figure(fig: Any, path: Path) -> Path:
    """Write a figure drawn elsewhere (e.g. by optuna.visualization.matplotlib) as a PNG,
    atomically, and close it."""
    return _save(fig, path)


def residuals(y: np.ndarray, pred: np.ndarray, path: Path, title: str = "") -> Path:
    """Residual (actual - predicted) against predicted."""
    plt = _pyplot()
    idx = _sample(len(y))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(pred[idx], (y - pred)[idx], s=4, alpha=0.25, color="#1f77b4", linewidths=0)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("predicted revenue ($)")
    ax.set_ylabel("actual - predicted ($)")
    ax.set_title(title or "Residuals vs predicted")
    return _save(fig, path)


def predicted_vs_actual(y: np.ndarray, pred: np.ndarray, path: Path, title: str = "") -> Path:
    """Predicted against actual; order values sit at a few price points, so y is jittered."""
    plt = _pyplot()
    idx = _sample(len(y))
    jitter = np.random.default_rng(1).uniform(-0.6, 0.6, len(idx))
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.scatter(y[idx] + jitter, pred[idx], s=4, alpha=0.25, color="#d62728", linewidths=0)
    hi = float(max(np.max(y, initial=0.0), np.max(pred, initial=0.0))) * 1.05 or 1.0
    ax.plot([0, hi], [0, hi], color="black", linewidth=0.8, linestyle="--", label="perfect")
    ax.set_xlim(-2, hi)
    ax.set_ylim(-2, hi)
    ax.set_xlabel("actual revenue ($, jittered)")
    ax.set_ylabel("predicted revenue ($)")
    ax.set_title(title or "Predicted vs actual")
    ax.legend(loc="upper left")
    return _save(fig, path)


def feature_importance(names: Sequence[str], importance: np.ndarray, path: Path,
                       title: str = "", xlabel: str = "RMSE increase when shuffled ($)") -> Path:
    """Horizontal bars, most important at the top."""
    plt = _pyplot()
    order = np.argsort(importance)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
    ax.barh(np.asarray(names)[order], np.asarray(importance)[order], color="#2ca02c")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title or "Permutation feature importance")
    return _save(fig, path)
