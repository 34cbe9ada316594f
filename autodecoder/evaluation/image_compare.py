"""``evaluate.py images``: how close are synthetic microscopy images to real ones?

Real and synthetic frames (:mod:`autodecoder.microscopy.datasets`) are paired by index
(frame t with frame t; the shorter side sets the count) and measured one pair at a time with
the metrics of :mod:`autodecoder.evaluation.images`: normalised Wasserstein scores per region and
z slice (both sides need masks), edge-degradation curves, CTC SNR and contrast ratio (each side
with masks), intensity histograms and power spectra. The tables, figures and ``report.md`` are
written by :mod:`autodecoder.evaluation.image_report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from autodecoder.evaluation import images as im
from autodecoder.evaluation.image_report import Measured, write_outputs
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import ensure_writable_dir
from autodecoder.microscopy.datasets import ImageSet, collect_images, read_pair

__all__ = ["NORMALISATIONS", "SAMPLES_PER_FRAME", "ImageComparison", "compare_images"]

#: How intensities are scaled before the Wasserstein scores and histograms: as recorded, or each
#: frame divided by its 99.9th percentile (for data of different bit depths or gains).
NORMALISATIONS = ("none", "percentile")
#: Voxels per frame and side kept (a fixed random subset) for the intensity histograms.
SAMPLES_PER_FRAME = 100_000


@dataclass
class ImageComparison:
    """What :func:`compare_images` produced: ``report.md``, the measurements, the notes and every file."""

    report: Path
    measured: Measured
    notes: list[str]
    files: list[Path]


def _scaled(image: np.ndarray, normalise: str) -> np.ndarray:
    """``image`` as float64, divided by its 99.9th percentile with ``normalise="percentile"``
    (so that 0 stays 0 and W(real, zeros) keeps its meaning)."""
    img = np.asarray(image, dtype=np.float64)
    if normalise == "percentile":
        top = float(np.percentile(img, 99.9))
        if top > 0:
            img = img / top
    return img


def _sample(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """At most :data:`SAMPLES_PER_FRAME` voxels of ``image`` (all of a smaller one)."""
    flat = image.ravel()
    if flat.size <= SAMPLES_PER_FRAME:
        return flat.copy()
    return flat[rng.choice(flat.size, SAMPLES_PER_FRAME, replace=False)]


def _measure_side(side: str, t: int, image: np.ndarray, raw: np.ndarray, mask: np.ndarray | None,
                  m: Measured, row: dict, rng: np.random.Generator) -> None:
    """The per-side measures of frame ``t``: edge curve, SNR/CR, histogram sample, spectrum."""
    curve = im.edge_curve(raw)
    m.curves[side].append(curve)
    for d, (v, n) in enumerate(zip(curve, im.normalised_curve(curve))):
        m.edges.append(dict(frame=t, side=side, depth=d, value=float(v),
                            normalised=float(n) if np.isfinite(n) else None))
    row[f"{side}_snr"], row[f"{side}_cr"] = im.frame_snr_cr(raw, mask) if mask is not None else (None, None)
    m.samples[side].append(_sample(image, rng))
    m.spectra[side].append(im.radial_power_spectrum(raw))


def _measure_pair(t: int, real: ImageSet, synthetic: ImageSet, normalise: str, m: Measured,
                  rng: np.random.Generator) -> None:
    """Read frame pair ``t`` and add its measures to ``m``."""
    (r_raw, r_mask), (s_raw, s_mask) = read_pair(real, t), read_pair(synthetic, t)
    r_img, s_img = _scaled(r_raw, normalise), _scaled(s_raw, normalise)
    row = dict(frame=t, real_file=real.frames[t].label, synthetic_file=synthetic.frames[t].label,
               real_slices=r_raw.shape[0], synthetic_slices=s_raw.shape[0])
    if r_mask is not None and s_mask is not None:
        for r in im.slice_scores(r_img, r_mask, s_img, s_mask):
            m.slices.append(dict(frame=t, **r))
    _measure_side("real", t, r_img, r_raw, r_mask, m, row, rng)
    _measure_side("synthetic", t, s_img, s_raw, s_mask, m, row, rng)
    row["edge_difference"] = im.edge_difference(m.curves["real"][-1], m.curves["synthetic"][-1])
    m.frames.append(row)


def _pairing_notes(real: ImageSet, synthetic: ImageSet, names: tuple[str, str]) -> list[str]:
    """What the report must say about how the frames were paired and what is missing."""
    notes = [f"{names[0]}: {n}" for n in real.notes] + [f"{names[1]}: {n}" for n in synthetic.notes]
    n_r, n_s = len(real.frames), len(synthetic.frames)
    if n_r != n_s:
        notes.append(f"{n_r} {names[0]} and {n_s} {names[1]} frames: the first {min(n_r, n_s)} of each are "
                     "paired (frame t with frame t), the rest are not used")
    for s, name in ((real, names[0]), (synthetic, names[1])):
        if not s.has_masks:
            notes.append(f"no masks for the {name} images: the region scores and its SNR/CR are missing")
    return notes


def compare_images(real_path: str | Path, synthetic_path: str | Path, real_masks: str | Path | None = None,
                   synthetic_masks: str | Path | None = None, out_dir: str | Path = "evaluation/images",
                   normalise: str = "none", names: tuple[str, str] = ("real", "synthetic"), progress: bool = True,
                   log: Callable[[str], None] = print) -> ImageComparison:
    """Compare synthetic microscopy frames with real ones and write the CSV tables, figures and ``report.md``.

    Args:
        real_path, synthetic_path: a folder of 3-D TIFF frames, a 4-D stack, or a CTC dataset/sequence.
        real_masks, synthetic_masks: masks overriding those found with the images (folder or stack).
        out_dir: output folder (created).
        normalise: one of :data:`NORMALISATIONS`.
        names: how the two sides are called in the report and figures.
        progress: show a progress bar over frame pairs.
        log: where messages go.
    """
    if normalise not in NORMALISATIONS:
        raise UserError(f"--normalise {normalise}: expected one of {', '.join(NORMALISATIONS)}")
    real = collect_images(real_path, real_masks, f"{names[0]} images")  # both sides checked before any output
    synthetic = collect_images(synthetic_path, synthetic_masks, f"{names[1]} images")
    out = ensure_writable_dir(Path(out_dir), "evaluation output")
    notes = _pairing_notes(real, synthetic, names)
    for n in notes:
        log(f"note: {n}")
    m, rng = Measured(), np.random.default_rng(0)  # fixed seed: the same inputs give the same histograms
    n_pairs = min(len(real.frames), len(synthetic.frames))
    for t in tqdm(range(n_pairs), unit="frame", desc="image metrics", disable=not progress, dynamic_ncols=True):
        _measure_pair(t, real, synthetic, normalise, m, rng)
    depths = {(f["real_slices"], f["synthetic_slices"]) for f in m.frames}
    if any(a != b for a, b in depths):
        notes.append("the stacks differ in depth: each real slice is paired with the synthetic slice at the same "
                     "relative depth (first with first, last with last; column `synthetic_z`)")
        log(f"note: {notes[-1]}")
    report, files = write_outputs(out, m, notes, real, synthetic, normalise, names)
    log(f"images: {n_pairs} frame pairs; report: {report}")
    return ImageComparison(report, m, notes, files)
