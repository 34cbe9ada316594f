"""Realism metrics of synthetic microscopy images against real ones (``evaluate.py images``).

Every image here is one frame ``(Z, Y, X)`` of intensities (any numeric dtype; computed in
float64) and every mask a same-shaped label or binary image (``> 0`` = a cell). Definitions,
with formulas: ``docs/image_metrics.md``.

* :func:`regions` — foreground, background inside the closed cells, background outside.
* :func:`normalised_wasserstein` / :func:`slice_scores` — ``1 − W(real, synthetic) / W(real, 0)``
  per region and z slice; :func:`third_of` names the upper, middle and lower thirds of z.
* :func:`edge_curve` / :func:`edge_difference` — the gradient-percentile curve below its peak.
* :func:`frame_snr_cr` — the Cell Tracking Challenge SNR and contrast ratio (NaN without both
  foreground and background).
* :func:`radial_power_spectrum` — the radially averaged 2-D power spectrum of each slice.

Missing values (an empty region, a real region that is all zero) are ``None``, never a number.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.stats import wasserstein_distance

from autodecoder.microscopy.camera import snr_cr

__all__ = ["REGIONS", "THIRDS", "CLOSING_ITERATIONS", "EROSION_ITERATIONS", "EDGE_SIGMA", "EDGE_TILE",
           "EDGE_PERCENTILE", "SPECTRUM_BINS", "regions", "normalised_wasserstein", "paired_slice",
           "third_of", "slice_scores", "edge_curve", "normalised_curve", "edge_difference", "frame_snr_cr",
           "radial_power_spectrum"]

#: The three regions, in report order.
REGIONS = ("foreground", "background_inside", "background_outside")
#: Thirds of z, from the first slice (index 0) to the last.
THIRDS = ("upper", "middle", "lower")
#: Binary closing of the cells that defines "inside" (6-connected element).
CLOSING_ITERATIONS = 15
#: Erosions of both background regions, away from the blurred cell borders.
EROSION_ITERATIONS = 2
#: Gaussian σ (z, y, x) in voxels before the Sobel gradient: no smoothing across slices.
EDGE_SIGMA = (0.0, 3.0, 3.0)
#: Side of the square crops (pixels) in which the gradient percentile is taken.
EDGE_TILE = 100
#: Percentile of the gradient magnitude per slice and crop.
EDGE_PERCENTILE = 95.0
#: Radial frequency bins of the power spectra, over 0 … 0.5 cycles/pixel.
SPECTRUM_BINS = 64

_SIX_CONNECTED = ndimage.generate_binary_structure(3, 1)


def regions(mask: np.ndarray) -> dict[str, np.ndarray]:
    """The three regions of one frame's masks ``(Z, Y, X)`` as boolean arrays of the same shape.

    ``foreground`` = ``mask > 0``; ``background_inside`` = closing(foreground) − foreground,
    eroded twice; ``background_outside`` = not closing(foreground), eroded twice. The closing
    uses the 6-connected element 15 times in 3-D. The mask is first padded by repeating its
    border slices, so that the closing treats the image as going on unchanged beyond its border
    (a plain closing erodes cells that touch the border, and zero padding would reopen gaps
    near the first and last slices). The erosions do not treat the image border as an edge
    either, so the outer background keeps the first and last slices.
    """
    fg = np.asarray(mask) > 0
    pad = CLOSING_ITERATIONS
    padded = np.pad(fg, pad, mode="edge")
    closed = ndimage.binary_closing(padded, _SIX_CONNECTED, iterations=CLOSING_ITERATIONS)
    closed = closed[pad:-pad, pad:-pad, pad:-pad] | fg

    def erode(region: np.ndarray) -> np.ndarray:
        return ndimage.binary_erosion(region, _SIX_CONNECTED, iterations=EROSION_ITERATIONS, border_value=1)

    return {"foreground": fg, "background_inside": erode(closed & ~fg), "background_outside": erode(~closed)}


def normalised_wasserstein(real: np.ndarray, synthetic: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """``(score, W(real, synthetic), W(real, zeros))`` of two sets of intensities (1-D, any lengths).

    ``score = 1 − W(real, synthetic) / W(real, zeros)`` with ``W(real, zeros) = mean |real|``:
    1 for the same distribution, 0 for one as far from the real intensities as a black image
    (negative when even further). All three are None when either set is empty; the score is
    None when the real intensities are all zero (no scale to normalise by).
    """
    r = np.asarray(real, dtype=np.float64).ravel()
    s = np.asarray(synthetic, dtype=np.float64).ravel()
    if r.size == 0 or s.size == 0:
        return None, None, None
    w = float(wasserstein_distance(r, s))
    w0 = float(np.abs(r).mean())  # the distance to a point mass at 0
    return (1.0 - w / w0 if w0 > 0 else None), w, w0


def paired_slice(z: int, n_real: int, n_synthetic: int) -> int:
    """The synthetic slice paired with real slice ``z``: the same index when both stacks have
    the same depth, else the slice at the same relative depth (first with first, last with last)."""
    if n_real == n_synthetic:
        return z
    if n_real == 1:
        return (n_synthetic - 1) // 2
    return int(round(z * (n_synthetic - 1) / (n_real - 1)))


def third_of(z: int, n_slices: int) -> str:
    """Which third of the stack slice ``z`` lies in (``np.array_split`` of the indices into three)."""
    bounds = np.cumsum([len(part) for part in np.array_split(np.arange(n_slices), 3)])
    return THIRDS[int(np.searchsorted(bounds, z, side="right"))]


def slice_scores(real: np.ndarray, real_mask: np.ndarray, synthetic: np.ndarray,
                 synthetic_mask: np.ndarray) -> list[dict]:
    """Normalised Wasserstein scores of one frame pair, per real z slice and region.

    Args:
        real, synthetic: intensities ``(Z, Y, X)``; their Y, X sizes and depths may differ.
        real_mask, synthetic_mask: each side's own masks, shaped like its image.

    Returns:
        One row per (slice, region): ``z``, ``synthetic_z``, ``third``, ``region``,
        ``real_voxels``, ``synthetic_voxels``, ``wasserstein``, ``w_real_zeros``, ``score``.
    """
    real_regions, synthetic_regions = regions(real_mask), regions(synthetic_mask)
    n_real, n_synthetic = real.shape[0], synthetic.shape[0]
    rows = []
    for z in range(n_real):
        zs = paired_slice(z, n_real, n_synthetic)
        for name in REGIONS:
            r = real[z][real_regions[name][z]]
            s = synthetic[zs][synthetic_regions[name][zs]]
            score, w, w0 = normalised_wasserstein(r, s)
            rows.append(dict(z=z, synthetic_z=zs, third=third_of(z, n_real), region=name, real_voxels=r.size,
                             synthetic_voxels=s.size, wasserstein=w, w_real_zeros=w0, score=score))
    return rows


def _tiles(n: int, size: int) -> list[slice]:
    """Split ``0 … n`` into ``ceil(n / size)`` near-equal pieces (about ``size`` long, at least one)."""
    parts = np.array_split(np.arange(n), max(1, math.ceil(n / size)))
    return [slice(int(p[0]), int(p[-1]) + 1) for p in parts if len(p)]


def _slice_sobel(volume: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of every slice of ``volume`` ``(Z, Y, X)``, in y and x only.

    ``ndimage.sobel`` on a 3-D array would also smooth across z with ``[1, 2, 1]``; here each
    derivative (``[−1, 0, 1]``) is smoothed along the other in-plane axis only.
    """
    def derivative(axis: int, other: int) -> np.ndarray:
        d = ndimage.correlate1d(volume, [-1.0, 0.0, 1.0], axis=axis)
        return ndimage.correlate1d(d, [1.0, 2.0, 1.0], axis=other)
    return np.hypot(derivative(1, 2), derivative(2, 1))


def edge_curve(image: np.ndarray, sigma: tuple[float, float, float] = EDGE_SIGMA, tile: int = EDGE_TILE,
               percentile: float = EDGE_PERCENTILE) -> np.ndarray:
    """The edge-degradation curve of one frame ``(Z, Y, X)``: gradient percentile vs slices below its peak.

    The frame is smoothed with a Gaussian of ``sigma`` (z, y, x; voxels), the Sobel gradient
    magnitude is taken in each slice (y and x only), and the ``percentile`` of it in every
    ``tile`` × ``tile`` crop (near-equal crops covering the slice) and slice. Each crop's curve
    starts at its own brightest-edge slice and runs to the last slice; the crops' curves are
    averaged position by position. Entry ``d`` (intensity units per pixel, ×8 for the Sobel
    weights) belongs to ``d`` slices below the peak; the array is as long as the longest tail.
    """
    smooth = ndimage.gaussian_filter(np.asarray(image, dtype=np.float64), sigma)
    magnitude = _slice_sobel(smooth)
    tails = []
    for ys in _tiles(magnitude.shape[1], tile):
        for xs in _tiles(magnitude.shape[2], tile):
            crop = magnitude[:, ys, xs].reshape(magnitude.shape[0], -1)
            per_slice = np.percentile(crop, percentile, axis=1)
            tails.append(per_slice[int(np.argmax(per_slice)):])
    total = np.zeros(max(len(t) for t in tails))
    count = np.zeros_like(total)
    for t in tails:
        total[:len(t)] += t
        count[:len(t)] += 1
    return total / count


def normalised_curve(curve: np.ndarray) -> np.ndarray:
    """``curve / curve[0]`` (1 at the peak slice); all NaN when the peak is 0 (a flat image)."""
    curve = np.asarray(curve, dtype=np.float64)
    if not curve.size or curve[0] <= 0:
        return np.full(curve.shape, np.nan)
    return curve / curve[0]


def edge_difference(real_curve: np.ndarray, synthetic_curve: np.ndarray) -> float | None:
    """Mean |normalised real − normalised synthetic| over the depths both curves reach (None: no overlap
    or a flat image). 0 = the edges fade with depth at the same rate."""
    n = min(len(real_curve), len(synthetic_curve))
    if n == 0:
        return None
    d = np.abs(normalised_curve(real_curve)[:n] - normalised_curve(synthetic_curve)[:n])
    return float(d.mean()) if np.isfinite(d).all() else None


def frame_snr_cr(image: np.ndarray, mask: np.ndarray) -> tuple[float | None, float | None]:
    """CTC ``SNR = |μ_fg − μ_bg| / σ_bg`` and ``CR = μ_fg / μ_bg`` of one frame ``(Z, Y, X)`` with its
    masks (:func:`autodecoder.microscopy.camera.snr_cr`); None where undefined (no foreground or
    no background voxel, a constant background, a zero background mean)."""
    fg = np.asarray(mask) > 0
    if not fg.any() or fg.all():
        return None, None
    with np.errstate(divide="ignore", invalid="ignore"):
        snr, cr = snr_cr(image, fg)
    return (snr if math.isfinite(snr) else None), (cr if math.isfinite(cr) else None)


def radial_power_spectrum(image: np.ndarray, bins: int = SPECTRUM_BINS) -> np.ndarray:
    """The radially averaged 2-D power spectrum of the slices of ``image`` ``(Z, Y, X)``, averaged over z.

    Each slice minus its mean is windowed (Hann, against the leakage of the image borders),
    transformed, and ``|F|²`` averaged over rings of radial frequency
    ``sqrt(fy² + fx²)`` in ``bins`` equal bins over 0 … 0.5 cycles/pixel, so that stacks of
    different sizes share the frequency axis. Returns ``(bins,)`` mean power (NaN in empty bins).
    """
    img = np.asarray(image, dtype=np.float64)
    ny, nx = img.shape[1:]
    window = np.outer(np.hanning(ny), np.hanning(nx)) if ny > 1 and nx > 1 else np.ones((ny, nx))
    power = np.zeros((ny, nx))
    for plane in img:
        power += np.abs(np.fft.fft2((plane - plane.mean()) * window)) ** 2
    power /= img.shape[0]
    fy, fx = np.meshgrid(np.fft.fftfreq(ny), np.fft.fftfreq(nx), indexing="ij")
    which = np.minimum((np.hypot(fy, fx) / 0.5 * bins).astype(int), bins)  # corners beyond 0.5 → dropped
    sums = np.bincount(which.ravel(), power.ravel(), minlength=bins + 1)[:bins]
    counts = np.bincount(which.ravel(), minlength=bins + 1)[:bins]
    with np.errstate(invalid="ignore"):
        return sums / counts
