"""The evaluation's figures: quantile–quantile and box plots of descriptors, Dice per frame.

Drawn with :data:`autodecoder.io.pictures.plt` (the file-only backend) and written with
:func:`autodecoder.io.pictures.save_figure` (atomically).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib import ticker

from autodecoder.evaluation import descriptors as desc
from autodecoder.evaluation.statistics import GENERATED, REAL, finite, format_p
from autodecoder.io.pictures import plt, save_figure

__all__ = ["COLOURS", "plot_comparison", "plot_reconstruction"]

#: The colours of the two sets.
COLOURS = ("#4C72B0", "#DD8452")


def _qq(ax, a: np.ndarray, b: np.ndarray, name: str, names: tuple[str, str], p: float) -> None:
    """A quantile–quantile plot of descriptor ``name``: ``a`` (x) against ``b`` (y)."""
    label = desc.LABELS[name][0]
    if len(a) and len(b):
        k = min(len(a), len(b), 200)
        probs = (np.arange(k) + 0.5) / k
        # integer descriptors (counts) get quantiles that are values of the data, not interpolations
        method = "inverted_cdf" if np.all(np.mod(a, 1) == 0) and np.all(np.mod(b, 1) == 0) else "linear"
        qa, qb = np.quantile(a, probs, method=method), np.quantile(b, probs, method=method)
        lo, hi = float(min(qa.min(), qb.min())), float(max(qa.max(), qb.max()))
        pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 0.5)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1, ls="--", zorder=1)
        ax.scatter(qa, qb, s=14, color=COLOURS[1], edgecolor="k", linewidth=0.3, zorder=2)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"{names[0]} quantiles", fontsize=8)
    ax.set_ylabel(f"{names[1]} quantiles", fontsize=8)
    ax.set_title(f"{label}\nKS p = {format_p(p)}", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)


def _box(ax, a: np.ndarray, b: np.ndarray, name: str, names: tuple[str, str], p: float) -> None:
    """Box plots of descriptor ``name`` for both sets, every value as a dot."""
    label, unit = desc.LABELS[name]
    data = [a if len(a) else np.array([np.nan]), b if len(b) else np.array([np.nan])]
    bp = ax.boxplot(data, tick_labels=list(names), widths=0.55, patch_artist=True, showfliers=False)
    for patch, c in zip(bp["boxes"], COLOURS):
        patch.set_facecolor(c)
        patch.set_alpha(0.45)
    for med in bp["medians"]:
        med.set_color("k")
    rng = np.random.default_rng(0)
    for i, vals in enumerate((a, b)):
        if len(vals):
            ax.scatter(i + 1 + rng.uniform(-0.15, 0.15, len(vals)), vals, s=6, color=COLOURS[i],
                       alpha=0.6, linewidth=0, zorder=3)
    ax.set_ylabel(unit, fontsize=8)
    ax.set_title(f"{label}\nKS p = {format_p(p)}", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(True, axis="y", alpha=0.3)


def plot_comparison(real: Sequence[dict], generated: Sequence[dict], ks: Sequence[dict], out: Path,
                    names: tuple[str, str] = (REAL, GENERATED)) -> list[Path]:
    """QQ plots and box plots per descriptor and in one grid figure each; returns the files written."""
    p_of = {r["descriptor"]: r["p_value"] for r in ks}
    written = []
    descriptors = [r["descriptor"] for r in ks]
    series = {n: (finite(r[n] for r in real), finite(r[n] for r in generated)) for n in descriptors}
    for kind, draw in (("qq", _qq), ("box", _box)):
        for n in descriptors:
            fig, ax = plt.subplots(figsize=(3.6, 3.4), dpi=110)
            draw(ax, *series[n], n, names, p_of[n])
            fig.subplots_adjust(left=0.21, right=0.96, bottom=0.14, top=0.85)  # fixed: tight_layout is slow
            path = out / f"{kind}_{n}.png"
            save_figure(fig, path)
            written.append(path)
        cols = 4
        rows = int(math.ceil(len(descriptors) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), dpi=100, squeeze=False)
        for ax, n in zip(axes.flat, descriptors):
            draw(ax, *series[n], n, names, p_of[n])
        for ax in list(axes.flat)[len(descriptors):]:
            ax.set_visible(False)
        title = ("Quantile–quantile plots" if kind == "qq" else "Box plots") + f": {names[0]} vs {names[1]}"
        fig.suptitle(title, fontsize=11)
        fig.tight_layout()
        path = out / f"{kind}_all.png"
        save_figure(fig, path)
        written.append(path)
    return written


def plot_reconstruction(rows: Sequence[dict], n_seq: int, path: Path) -> Path:
    """Dice per frame, one line per sequence, as a PNG; ``rows`` are
    :data:`~autodecoder.evaluation.reconstruction.RECONSTRUCTION_COLUMNS` dicts."""
    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=100)
    for i in range(n_seq):
        r = [x for x in rows if x["sequence"] == i]
        ax.plot([x["frame"] for x in r], [x["dice"] for x in r], marker="o", ms=3, label=r[0]["file"])
    ax.set_xlabel("frame")
    ax.set_ylabel("Dice (reconstructed vs training mask)")
    ax.set_ylim(max(0.0, min(0.5, min(x["dice"] for x in rows) - 0.05)), 1.005)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if n_seq <= 12:
        ax.legend(fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)
