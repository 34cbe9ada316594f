"""The evaluation's files a person reads: CSV tables (one writer) and the Markdown reports.

* :func:`write_csv` writes every CSV file of ``evaluate.py`` (numbers with 6 significant digits,
  whole numbers without decimals, ``nan`` for NaN, an empty cell for None).
* :func:`write_report` writes ``report.md`` of the compare mode, :func:`write_reconstruction_report`
  ``reconstruction.md`` of the reconstruction mode; :func:`summary_text` is the latter's table on
  the terminal.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from autodecoder.evaluation import descriptors as desc
from autodecoder.evaluation.pool import DescribedSet
from autodecoder.evaluation.statistics import format_p
from autodecoder.experiment.guards import atomic_path, atomic_write_text

__all__ = ["write_csv", "format_number", "format_d", "md_table", "write_report", "SUMMARY_HEADER",
           "summary_text", "write_reconstruction_report"]


# --------------------------------------------------------------------------
# CSV

def _cell(v: Any) -> Any:
    """One CSV cell (see the module docstring)."""
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v.is_integer() and abs(v) < 2**53:
            return int(v)
        return f"{v:.6g}"
    return v


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> Path:
    """Write ``rows`` (dicts) with ``columns`` as a CSV file (atomically)."""
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            for r in rows:
                w.writerow([_cell(r.get(c)) for c in columns])
    return Path(path)


# --------------------------------------------------------------------------
# compare: report.md

def format_number(x: Any) -> str:
    """A descriptor value in about 3 significant digits (whole numbers as they are, – for none)."""
    if x is None or not np.isfinite(x):
        return "–"
    ax = abs(float(x))
    if float(x).is_integer() and ax < 1e15:
        return str(int(x))
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 0.01 or ax == 0:
        return f"{x:.3f}"
    return f"{x:.3g}"


def format_d(x: Any) -> str:
    """A KS statistic D with 3 decimals (– for none)."""
    return f"{x:.3f}" if x is not None and np.isfinite(x) else "–"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _ks_md(ks: Sequence[dict], names: tuple[str, str]) -> str:
    """The KS rows as a Markdown table."""
    rows = []
    def iqr(r: dict, side: str) -> str:
        return (f"{format_number(r[side + '_median'])} "
                f"[{format_number(r[side + '_q1'])}–{format_number(r[side + '_q3'])}]")
    for r in ks:
        label, unit = desc.LABELS[r["descriptor"]]
        rows.append([label, unit, iqr(r, "real"), iqr(r, "generated"),
                     format_d(r["ks_statistic"]), format_p(r["p_value"]), r["verdict"]])
    return md_table(["descriptor", "unit", f"{names[0]} median [IQR]", f"{names[1]} median [IQR]", "KS D", "p-value",
                      "verdict"], rows)


def _division_text(seqs: Sequence[dict], name: str) -> str:
    """Which sequences of a set divide, and at which frame."""
    div = [(s["sequence"], s["division_frame"]) for s in seqs if s["division_frame"] is not None]
    if not div:
        return f"{name}: no division in any of the {len(seqs)} sequences"
    where = ", ".join(f"{n} at frame {f}" for n, f in div)
    return f"{name}: {len(div)} of {len(seqs)} sequences divide ({where})"


READING_GUIDE = """\
Each row of the table compares one shape descriptor between all frames of the
{r} cells and all frames of the {g} cells. *Median [IQR]* summarises each
distribution: the middle value and the range of the middle half of the values.
The Kolmogorov–Smirnov statistic *D* is the largest gap between the two
cumulative distributions (0 = identical, 1 = no overlap at all). The *p-value*
is the chance of a gap at least this large if both sets came from the same
distribution: below 0.01 the {g} cells differ from the {r} ones in that
descriptor; a large p-value only means that no difference was detected, which
with few cells is weak evidence of similarity. Frames of one cell are not
independent, so with long sequences the p-values are too small (optimistic
about finding differences): read *D* and the plots alongside them. In a
quantile–quantile plot each dot pairs the same quantile of both sets (the
median with the median, …): dots on the dashed diagonal mean equal
distributions, dots above it mean larger {g} values, a slope different from the
diagonal a different spread. Box plots show the median (line), the middle half
(box) and the range without outliers (whiskers), with every frame as a dot.
For synthetic training data of a segmentation network, differences in size
(volume, axis lengths) and shape (sphericity, solidity, elongation) matter most;
the number of components tells whether cells divide (or fall apart) as often.
"""


def _set_summary(s: DescribedSet, paths: Sequence[Path]) -> str:
    """One line per set: sequences, frames, empty frames, inputs."""
    empty = sum(1 for f in s.frames if f["volume"] == 0)
    extra = f", {empty} empty frames (excluded from the shape descriptors)" if empty else ""
    return f"{len(s.sources)} sequences, {len(s.frames)} frames{extra} — " + ", ".join(f"`{p}`" for p in paths)


def _results(real: DescribedSet, generated: DescribedSet, ks_frames: Sequence[dict], ks_sequences: Sequence[dict],
             names: tuple[str, str]) -> list[str]:
    """The report's tables, division counts and figures."""
    r, g = names
    return [
        "## Shape descriptors per frame",
        "",
        _ks_md(ks_frames, names),
        "",
        "## Per sequence: growth and division",
        "",
        _ks_md(ks_sequences, names) if ks_sequences else "(too few sequences for a test)",
        "",
        f"* {_division_text(real.sequences, r)}.",
        f"* {_division_text(generated.sequences, g)}.",
        "",
        "A division is the first frame with more connected components than the first frame.",
        "",
        "## Quantile–quantile plots",
        "",
        f"![Quantile–quantile plots of every descriptor, {r} (x) against {g} (y)](qq_all.png)",
        "",
        "## Box plots",
        "",
        f"![Box plots of every descriptor, {r} and {g} side by side](box_all.png)",
        "",
        "One figure per descriptor: `qq_<descriptor>.png`, `box_<descriptor>.png`.",
        "",
    ]


def _methods(threshold: float, surface: str, min_component_voxels: int) -> list[str]:
    """The report's last section: the files and how every descriptor is measured."""
    surf = ("the mask smoothed with a Gaussian of σ = "
            f"{desc.SMOOTHING_SIGMA} voxel, marching cubes at 0.5 (identical steps for both sets)"
            if surface == "mask" else
            f"marching cubes on the SDF at level {threshold:g} (masks from TIFFs: smoothed mask)")
    return [
        "## Files and methods",
        "",
        "* `descriptors_real.csv`, `descriptors_generated.csv`: every descriptor of every frame; "
        "`sequences_real.csv`, `sequences_generated.csv`: growth rates and division frames; "
        "`ks_tests.csv`: the tables above.",
        "* Volume: number of voxels inside. Surface area: marching-cubes mesh of " + surf + ". "
        "Sphericity: π^(1/3)·(6·volume)^(2/3) / area (1 for a ball). Axis lengths: full axes of the "
        "ellipsoid with the same second moments as the voxels; elongation = 1 − middle/major, "
        "flatness = 1 − minor/middle. Solidity: mesh volume / convex-hull volume. Components: "
        f"26-connected (at least {min_component_voxels} voxel{'s' if min_component_voxels > 1 else ''}). "
        "Euler characteristic: components − tunnels + cavities (1 for a ball, 0 for a ring). "
        "Growth rate: slope of volume vs frame (relative: over the first frame's volume).",
        "* Kolmogorov–Smirnov: `scipy.stats.ks_2samp`, two-sided; NaN values (empty frames) left out.",
        "",
    ]


def write_report(out: Path, real: DescribedSet, generated: DescribedSet, ks_frames: Sequence[dict],
                 ks_sequences: Sequence[dict], names: tuple[str, str], real_paths: Sequence[Path],
                 generated_paths: Sequence[Path], threshold: float, surface: str,
                 min_component_voxels: int, warning: str | None = None) -> Path:
    """Write ``report.md`` in ``out`` (the figures and CSV files are expected next to it)."""
    r, g = names
    parts = [
        f"# Shape comparison: {r} vs {g} cells",
        "",
        f"* **{r}**: {_set_summary(real, real_paths)}",
        f"* **{g}**: {_set_summary(generated, generated_paths)}",
        f"* Written {time.strftime('%Y-%m-%d %H:%M')}; cells are `sdf <= {threshold:g}` in SDF files and "
        "`value > 0` in mask TIFFs; all measures in voxels.",
        *([f"* **Warning**: {warning}."] if warning else []),
        "",
        "## How to read this report",
        "",
        READING_GUIDE.format(r=r, g=g),
        *_results(real, generated, ks_frames, ks_sequences, names),
        *_methods(threshold, surface, min_component_voxels),
    ]
    path = Path(out) / "report.md"
    atomic_write_text(path, "\n".join(parts))
    return path


# --------------------------------------------------------------------------
# reconstruction: reconstruction.md

def _summary_rows(summary: Sequence[dict]) -> list[list[str]]:
    """The cells of the per-sequence summary (``"all"`` in bold)."""
    return [[s["sequence"] if s["sequence"] != "all" else "**all**", s["file"], str(s["frames"]),
             f"{s['dice']:.3f}", f"{s['dice_min']:.3f}", f"{s['jaccard']:.3f}",
             _dist(s["mean_surface_distance"]), _dist(s["surface_distance_p95"])] for s in summary]


def _dist(x: float) -> str:
    """A surface distance in voxels (inf: an empty mask)."""
    return "inf (an empty mask)" if math.isinf(x) else f"{x:.2f}"


SUMMARY_HEADER = ("sequence", "file", "frames", "Dice", "worst Dice", "Jaccard", "mean surface distance",
                  "95th pct. surface distance")


def summary_text(summary: Sequence[dict]) -> str:
    """The per-sequence summary of the reconstruction mode as a plain-text table."""
    widths = [8, max(4, max(len(s["file"]) for s in summary)), 6, 6, 6, 7, 8, 8]
    head = ["seq", "file", "frames", "Dice", "worst", "Jaccard", "MSD", "SD95"]
    lines = ["  ".join(f"{h:<{w}}" for h, w in zip(head, widths))]
    for r in _summary_rows(summary):
        r[0] = r[0].replace("**", "")
        lines.append("  ".join(f"{c:<{w}}" for c, w in zip(r, widths)))
    return "\n".join(lines)


def write_reconstruction_report(path: Path, exp: Path, model: Any, data_dir: Path,
                                infos: Sequence[tuple[int, tuple[int, int, int]]], dims: Sequence[int] | None,
                                resampled: bool, threshold: float, summary: Sequence[dict]) -> Path:
    """Write ``reconstruction.md``.

    Args:
        model: the :class:`~autodecoder.decoding.trained.TrainedModel` (its ``source`` and ``epoch``).
        infos: ``(frames, grid (X, Y, Z))`` of every training file.
        dims: the decoded grid when it was resampled, else None.
        summary: the per-sequence summary, ``"all"`` last.
    """
    grids = sorted({"×".join(map(str, g)) for _, g in infos})
    frames = sorted({n for n, _ in infos})
    if resampled:
        how = (f"The model was decoded at {'×'.join(map(str, dims))} and **resampled** to the training grid "
               f"({', '.join(grids)}) by linear interpolation of the SDF (`scipy.ndimage.zoom`, order 1) "
               "before the comparison; part of the error may come from the resampling.")
    else:
        how = f"The model was decoded directly on the training grid of each file ({', '.join(grids)})."
    text = [
        f"# Reconstruction quality: `{exp}`",
        "",
        f"* Model: `{model.source}` (epoch {model.epoch}); training data: `{data_dir}` "
        f"({len(infos)} sequences, {', '.join(map(str, frames))} frames).",
        f"* {how}",
        f"* Each frame is decoded at its training time; cells are `sdf <= {threshold:g}` in both.",
        "",
        "## How to read this",
        "",
        "Dice (2·overlap / (sum of both volumes)) and Jaccard (overlap / union) are 1 for a perfect "
        "reconstruction and 0 when the shapes do not overlap; Dice above about 0.9 means the shapes agree "
        "closely. The surface distances say how far, in voxels, the reconstructed surface lies from the "
        "true one: the mean over both surfaces, and the 95th percentile (95 % of the surface is closer "
        "than this). A value around 1 voxel is at the resolution limit of the data; `inf` means that one "
        "of the two masks of a frame is empty. `worst Dice` is the lowest frame of the sequence.",
        "",
        "## Per sequence (means over frames)",
        "",
        md_table(SUMMARY_HEADER, _summary_rows(summary)),
        "",
        "![Dice per frame and sequence](reconstruction_dice.png)",
        "",
        "Every frame: `reconstruction.csv`.",
        "",
    ]
    atomic_write_text(path, "\n".join(text))
    return path
