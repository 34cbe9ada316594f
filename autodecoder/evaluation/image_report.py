"""The files of ``evaluate.py images``: CSV tables, PNG figures and ``report.md``.

Tables (one writer, :func:`autodecoder.evaluation.report.write_csv`; a missing value is an empty
cell): ``wasserstein_slices.csv``, ``wasserstein_summary.csv``, ``edge_curves.csv``,
``frames.csv`` (SNR, CR and the edge-curve difference per frame). Figures (Agg, atomic):
``wasserstein_z.png``, ``edge_curves.png``, ``histograms_spectra.png``, ``snr_cr.png``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from autodecoder.evaluation import images as im
from autodecoder.evaluation.report import format_number, md_table, write_csv
from autodecoder.experiment.guards import atomic_write_text
from autodecoder.io.pictures import plt, save_figure

if TYPE_CHECKING:  # only for annotations
    from autodecoder.microscopy.datasets import ImageSet

__all__ = ["Measured", "SLICE_COLUMNS", "SUMMARY_COLUMNS", "EDGE_COLUMNS", "FRAME_COLUMNS", "summarise_thirds",
           "mean_curve", "write_outputs"]

SLICE_COLUMNS = ("frame", "z", "synthetic_z", "third", "region", "real_voxels", "synthetic_voxels",
                 "wasserstein", "w_real_zeros", "score")
SUMMARY_COLUMNS = ("region", "third", "mean_score", "median_score", "scored_slices", "missing_slices")
EDGE_COLUMNS = ("frame", "side", "depth", "value", "normalised")
FRAME_COLUMNS = ("frame", "real_file", "synthetic_file", "real_slices", "synthetic_slices", "real_snr",
                 "real_cr", "synthetic_snr", "synthetic_cr", "edge_difference")
_SIDES = ("real", "synthetic")


@dataclass
class Measured:
    """Everything measured on the frame pairs (rows as the CSV tables hold them).

    Attributes:
        slices: per frame, z slice and region: the Wasserstein rows of :func:`images.slice_scores`.
        edges: per frame, side and depth below the peak: ``value`` and ``normalised``.
        frames: per frame: the files, SNR and CR of both sides, the edge-curve difference.
        curves: side → the edge curve of every frame.
        samples: side → intensity samples of every frame (the histograms).
        spectra: side → the radial power spectrum of every frame.
    """

    slices: list[dict] = field(default_factory=list)
    edges: list[dict] = field(default_factory=list)
    frames: list[dict] = field(default_factory=list)
    curves: dict[str, list[np.ndarray]] = field(default_factory=lambda: {"real": [], "synthetic": []})
    samples: dict[str, list[np.ndarray]] = field(default_factory=lambda: {"real": [], "synthetic": []})
    spectra: dict[str, list[np.ndarray]] = field(default_factory=lambda: {"real": [], "synthetic": []})


def summarise_thirds(slices: Sequence[dict]) -> list[dict]:
    """Mean and median score per region and third of z over all frames (None when nothing was scored)."""
    rows = []
    for region in im.REGIONS:
        for third in (*im.THIRDS, "all"):
            sel = [r for r in slices if r["region"] == region and third in (r["third"], "all")]
            scores = [r["score"] for r in sel if r["score"] is not None]
            rows.append(dict(region=region, third=third, scored_slices=len(scores),
                             missing_slices=len(sel) - len(scores),
                             mean_score=float(np.mean(scores)) if scores else None,
                             median_score=float(np.median(scores)) if scores else None))
    return rows


def mean_curve(curves: Sequence[np.ndarray]) -> np.ndarray:
    """Position-wise mean of the normalised edge curves of several frames (as long as the longest)."""
    norm = [im.normalised_curve(c) for c in curves]
    if not norm:
        return np.zeros(0)
    table = np.full((len(norm), max(len(c) for c in norm)), np.nan)
    for i, c in enumerate(norm):
        table[i, :len(c)] = c
    return _nanmean(table)


def _nanmean(table: np.ndarray) -> np.ndarray:
    """Column means of ``table`` without NaN; an all-NaN column (a flat image, an empty bin) stays NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(table, axis=0)


def _plot_wasserstein(out: Path, slices: Sequence[dict], names: tuple[str, str]) -> Path:
    """Mean score per real z slice and region (over frames)."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for region in im.REGIONS:
        zs = sorted({r["z"] for r in slices if r["region"] == region})
        means = [np.mean([r["score"] for r in slices if r["region"] == region and r["z"] == z
                          and r["score"] is not None] or [np.nan]) for z in zs]
        ax.plot(zs, means, marker="o", ms=3, label=region.replace("_", " "))
    ax.axhline(1, color="grey", ls="--", lw=0.8)
    ax.axhline(0, color="grey", ls=":", lw=0.8)
    ax.set_xlabel(f"z slice ({names[0]})")
    ax.set_ylabel("normalised Wasserstein score (1 = same)")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, out / "wasserstein_z.png")


def _plot_edges(out: Path, m: Measured, names: tuple[str, str]) -> Path:
    """Normalised edge curves: every frame thin, the mean thick, both sides."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for side, name, colour in zip(_SIDES, names, ("tab:blue", "tab:orange")):
        for c in m.curves[side]:
            ax.plot(im.normalised_curve(c), color=colour, alpha=0.2, lw=0.8)
        ax.plot(mean_curve(m.curves[side]), color=colour, lw=2, label=name)
    ax.set_xlabel("slices below the slice of the strongest edges")
    ax.set_ylabel("95th pct. gradient / its peak")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, out / "edge_curves.png")


def _plot_histograms_spectra(out: Path, m: Measured, names: tuple[str, str]) -> Path:
    """Intensity histograms (shared bins) and radially averaged power spectra, side by side."""
    pooled = {s: np.concatenate(m.samples[s]) for s in _SIDES}
    lo = min(np.percentile(v, 0.1) for v in pooled.values())
    hi = max(np.percentile(v, 99.9) for v in pooled.values())
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 101)
    freq = (np.arange(im.SPECTRUM_BINS) + 0.5) * 0.5 / im.SPECTRUM_BINS
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for side, name in zip(_SIDES, names):
        # values beyond the pooled 0.1–99.9th percentiles are left out rather than piled into the end bins
        a.hist(pooled[side], bins=bins, density=True, histtype="step", lw=1.5, label=name)
        spectrum = _nanmean(np.stack(m.spectra[side]))
        keep = np.isfinite(spectrum) & (freq > freq[0])  # small slices leave low bins empty; no DC bin
        b.loglog(freq[keep], spectrum[keep] / spectrum[keep].sum(), label=name)  # shape only
    a.set_yscale("log")
    a.set_xlabel("intensity (scaled as in the report)")
    a.set_ylabel("density")
    a.set_title("intensity histograms")
    b.set_xlabel("spatial frequency (cycles / pixel)")
    b.set_ylabel("power (fraction of the total)")
    b.set_title("radially averaged power spectra of the slices")
    b.xaxis.set_minor_formatter(plt.NullFormatter())
    for ax in (a, b):
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, out / "histograms_spectra.png")


def _plot_snr_cr(out: Path, frames: Sequence[dict], names: tuple[str, str]) -> Path:
    """SNR and CR per frame for both sides (missing ones left out)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), dpi=100)
    for ax, what in zip(axes, ("snr", "cr")):
        for side, name in zip(_SIDES, names):
            pts = [(f["frame"], f[f"{side}_{what}"]) for f in frames if f[f"{side}_{what}"] is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, label=name)
        ax.set_xlabel("frame")
        ax.set_ylabel({"snr": "SNR = |μ_fg − μ_bg| / σ_bg", "cr": "CR = μ_fg / μ_bg"}[what])
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    return save_figure(fig, out / "snr_cr.png")


GUIDE = """\
Every measure compares the {s} images with the {r} ones; the frames are paired
by index. **Normalised Wasserstein score** per region and z slice: 1 means the
{s} intensities in that region have the same distribution as the {r} ones, 0
means they are as far from the {r} intensities as a black image would be
(negative: even further). Foreground is the cells, *background inside* the gaps
that a morphological closing of the cells fills (between and within cells),
*background outside* the rest; each side's regions come from its own masks. "–"
marks a region that is empty in one of the images (or a {r} region that is all
zero): no score, not a bad one. **Edge curve**: how sharp the edges are (the
95th percentile of the gradient) from the slice with the sharpest edges
downwards, relative to that peak; light scattering and aberrations make real
edges fade with depth, and a {s} curve that stays flat or falls faster shows
the optics model missing that. The single number is the mean absolute gap
between the two normalised curves (0 = the same fading). **SNR and CR** are the
Cell Tracking Challenge's image-quality numbers; similar values mean a
segmentation network sees similar difficulty. The histograms and power spectra
show the remaining differences: grey levels and noise (histogram), texture and
blur scale (spectrum: more power at high frequencies = finer detail or noise).
"""


def _ranges(frames: Sequence[dict], side: str) -> str:
    """``SNR median [min–max], CR …`` of one side, or a dash."""
    def one(key: str) -> str:
        v = [f[key] for f in frames if f[key] is not None]
        return (f"{format_number(np.median(v))} [{format_number(min(v))}–{format_number(max(v))}]"
                if v else "–")
    return f"{one(side + '_snr')} | {one(side + '_cr')}"


def _report_text(m: Measured, summary: Sequence[dict], notes: Sequence[str], real: "ImageSet",
                 synthetic: "ImageSet", normalise: str, names: tuple[str, str]) -> str:
    """The Markdown of ``report.md``."""
    r, s = names
    table = md_table(["region", "third of z", "mean score", "median score", "slices scored", "missing"],
                     [[x["region"].replace("_", " "), x["third"], format_number(x["mean_score"]),
                       format_number(x["median_score"]), x["scored_slices"], x["missing_slices"]] for x in summary])
    diffs = [f["edge_difference"] for f in m.frames if f["edge_difference"] is not None]
    edge = format_number(float(np.mean(diffs))) if diffs else "–"
    scaling = ("each frame divided by its 99.9th percentile" if normalise == "percentile" else "as recorded")
    return "\n".join([
        f"# Image realism: {s} vs {r} microscopy", "",
        f"* **{r}**: `{real.source}` ({len(real.frames)} frames)",
        f"* **{s}**: `{synthetic.source}` ({len(synthetic.frames)} frames)",
        f"* Written {time.strftime('%Y-%m-%d %H:%M')}; {len(m.frames)} frame pairs; intensities {scaling}.",
        *[f"* Note: {n}." for n in notes], "",
        "## How to read this report", "", GUIDE.format(r=r, s=s),
        "## Normalised Wasserstein scores (thirds of z: upper = first slices)", "",
        table if m.slices else "(no scores: both sides need masks)", "",
        "![Mean score per z slice and region](wasserstein_z.png)", "",
        "## Edge degradation along z", "",
        f"Mean |{r} − {s}| of the normalised curves, over frames: **{edge}**.", "",
        "![Normalised edge curves, every frame thin and the mean thick](edge_curves.png)", "",
        "## SNR and contrast ratio (CTC)", "",
        md_table(["side", "SNR median [min–max]", "CR median [min–max]"],
                 [[r, *_ranges(m.frames, "real").split(" | ")], [s, *_ranges(m.frames, "synthetic").split(" | ")]]),
        "", "![SNR and CR per frame](snr_cr.png)", "",
        "## Intensity histograms and power spectra", "",
        "![Histograms (same bins) and radially averaged power spectra](histograms_spectra.png)", "",
        "## Files and definitions", "",
        "* `wasserstein_slices.csv`: every frame, slice and region; `wasserstein_summary.csv`: the table above; "
        "`edge_curves.csv`: every curve; `frames.csv`: SNR, CR and the edge-curve gap per frame. Empty cells "
        "are missing values.",
        f"* Score = 1 − W({r}, {s}) / W({r}, 0), W the 1-D Wasserstein distance of the intensities "
        f"(`scipy.stats.wasserstein_distance`), W({r}, 0) = mean |{r}|. Regions from the masks (> 0): closing "
        f"with the 6-connected element, {im.CLOSING_ITERATIONS} iterations; both backgrounds eroded "
        f"{im.EROSION_ITERATIONS} times.",
        f"* Edge curve: Gaussian σ (z, y, x) = {im.EDGE_SIGMA}, Sobel magnitude per slice, "
        f"{im.EDGE_PERCENTILE:g}th percentile in {im.EDGE_TILE} × {im.EDGE_TILE} crops, from each crop's peak "
        "slice downwards, averaged over crops; on the recorded intensities.",
        "* SNR = |μ_fg − μ_bg| / σ_bg, CR = μ_fg / μ_bg on the recorded intensities (background = all "
        "voxels outside the masks). Spectra: Hann-windowed slices minus their mean, |FFT|² averaged over "
        "rings, normalised to unit total power. Details: `docs/image_metrics.md`.", ""])


def write_outputs(out: Path, m: Measured, notes: Sequence[str], real: "ImageSet", synthetic: "ImageSet",
                  normalise: str, names: tuple[str, str]) -> tuple[Path, list[Path]]:
    """Write the four CSV tables, the four figures and ``report.md`` in ``out``; returns (report, all files)."""
    summary = summarise_thirds(m.slices)
    files = [write_csv(out / "wasserstein_slices.csv", m.slices, SLICE_COLUMNS),
             write_csv(out / "wasserstein_summary.csv", summary, SUMMARY_COLUMNS),
             write_csv(out / "edge_curves.csv", m.edges, EDGE_COLUMNS),
             write_csv(out / "frames.csv", m.frames, FRAME_COLUMNS),
             _plot_wasserstein(out, m.slices, names), _plot_edges(out, m, names),
             _plot_histograms_spectra(out, m, names), _plot_snr_cr(out, m.frames, names)]
    report = out / "report.md"
    atomic_write_text(report, _report_text(m, summary, notes, real, synthetic, normalise, names))
    return report, files + [report]
