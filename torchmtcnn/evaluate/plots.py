"""Precision-recall, CED and ROC plots as PNG files (needs the optional matplotlib).

Every function takes one curve per detector name, so several detectors share one plot. The
figures are drawn on matplotlib's Agg canvas directly: the user's pyplot backend is untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from collections.abc import Mapping

import numpy as np

from ..errors import MissingExtraError
from .ap import PRCurve
from .fddb import DiscreteROC

log = logging.getLogger(__name__)


def _figure(ncols: int = 1, width: float = 5.0, height: float = 4.5):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtraError("plots", "plots", "matplotlib") from exc
    fig = Figure(figsize=(width * ncols, height))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, k + 1) for k in range(ncols)]
    return fig, axes


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    log.info("wrote %s", path)
    return path


def _label_axes(ax, xlabel: str, ylabel: str, title: str, legend: str, xlim: tuple[float, float] | None = None) -> None:
    """The look every plot shares: y from 0 to 1, labels, title, light grid, small legend."""
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend, fontsize=8)


def _pr_axes(ax, curves: Mapping[str, PRCurve], title: str) -> None:
    for name, curve in curves.items():
        ok = np.isfinite(curve.precision)
        ax.plot(curve.recall[ok], curve.precision[ok], lw=1.5, label=f"{name} ({curve.ap:.3f})")
    _label_axes(ax, "recall", "precision", title, "lower left", (0, 1))


def plot_pr(curves: Mapping[str, PRCurve], path: str | Path, title: str = "precision-recall"
            ) -> Path:
    """One precision-recall plot, one line per detector (legend shows the AP)."""
    fig, (ax,) = _figure()
    _pr_axes(ax, curves, title)
    return _save(fig, path)


def plot_wider_pr(results: Mapping[str, Mapping[str, PRCurve]], path: str | Path) -> Path:
    """WIDER FACE: one panel per setting; results maps detector -> setting -> PRCurve."""
    settings = list(next(iter(results.values())).keys()) if results else []
    fig, axes = _figure(max(len(settings), 1))
    for ax, setting in zip(axes, settings):
        _pr_axes(ax, {name: res[setting] for name, res in results.items()}, f"WIDER {setting}")
    return _save(fig, path)


def plot_ced(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], path: str | Path,
             title: str = "cumulative error distribution") -> Path:
    """CED plot: curves maps detector -> (x [K] NME, y [K] fraction of faces, AUC)."""
    fig, (ax,) = _figure()
    for name, (x, y, auc) in curves.items():
        ax.plot(x, y, lw=1.5, label=f"{name} (AUC@{x[-1]:.2f} {auc:.3f})")
    _label_axes(ax, "normalised mean error (inter-ocular)", "fraction of faces", title, "lower right")
    return _save(fig, path)


def plot_roc(curves: Mapping[str, DiscreteROC], path: str | Path, max_fp: int = 2000,
             title: str = "discrete ROC") -> Path:
    """FDDB-style ROC: true positive rate against the number of false positives."""
    fig, (ax,) = _figure()
    for name, roc in curves.items():
        fp = np.concatenate(([0], roc.fp))
        tpr = np.concatenate(([0.0], roc.tpr))
        ax.step(fp, tpr, where="post", lw=1.5, label=f"{name} ({roc.tpr_at(1000):.3f}@1000)")
    _label_axes(ax, "false positives", "true positive rate", title, "lower right", (0, max_fp))
    return _save(fig, path)
