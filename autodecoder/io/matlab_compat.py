"""MATLAB behaviour, in numpy/scipy, where the two differ by default.

Each function documents the MATLAB function it reproduces and how Python's
obvious equivalent differs. Volumes are in MATLAB's axis order
``(rows, columns, slices)``, which is the SDF frame order ``(X, Y, Z)`` of
this project (see :mod:`autodecoder.io.exports`); indices are 0-based unless a
name says ``1-based``. MATLAB ``dir``'s file order is
:func:`autodecoder.io.discovery.lexicographic_key`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["matlab_round", "resize_contributions", "imresize3", "imgaussfilt3", "regionprops_centroid",
           "centroid_rcs"]


def matlab_round(x):
    """MATLAB ``round``: halves go away from zero (``round(2.5) == 3``, ``round(-2.5) == -3``).

    ``numpy.round`` and Python's ``round`` round halves to even (``2.5 → 2``),
    which moves a crop box by one voxel for a centroid that lies exactly
    between two voxels, as symmetric cells often do. Returns int64 (or a
    Python int for a scalar).
    """
    a = np.asarray(x, dtype=np.float64)
    r = (np.sign(a) * np.floor(np.abs(a) + 0.5)).astype(np.int64)
    return int(r) if r.ndim == 0 else r


# --------------------------------------------------------------------------
# imresize3

def _box(x: np.ndarray) -> np.ndarray:
    return ((-0.5 <= x) & (x < 0.5)).astype(np.float64)


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - np.abs(x), 0.0, None)


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((1 < ax) & (ax <= 2)))


_KERNELS = {"nearest": (_box, 1.0), "linear": (_triangle, 2.0), "cubic": (_cubic, 4.0)}


def resize_contributions(in_length: int, out_length: int, scale: float, method: str = "nearest",
                         antialias: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based source indices of MATLAB's resize along one axis.

    MATLAB's ``imresize``/``imresize3`` map output index ``x`` (1-based) to
    the input position ``u = x/scale + 0.5·(1 - 1/scale)`` (pixel centres
    aligned, not corners), weigh the neighbours with the kernel, normalise the
    weights, and mirror indices that fall outside. With ``'nearest'`` the
    kernel is the half-open box ``[-0.5, 0.5)``: the source voxel is
    ``floor(u + 0.5)`` (1-based), i.e. 0-based ``floor((j + 0.5)/scale)``
    clipped to the last voxel. Antialiasing (a kernel widened by ``1/scale``
    when shrinking) is MATLAB's default for every method but ``'nearest'``.

    Returns:
        ``(weights, indices)``, both ``(out_length, P)``.
    """
    if method not in _KERNELS:
        raise ValueError(f"method must be one of {sorted(_KERNELS)}, got {method!r}")
    kernel, width = _KERNELS[method]
    if antialias is None:
        antialias = method != "nearest"
    if scale < 1 and antialias:
        def h(v):
            return scale * kernel(scale * v)
        width = width / scale
    else:
        h = kernel
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    p = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(p)[None, :]  # 1-based
    w = h(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    idx0 = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_length)]
    return w, idx0


def imresize3(volume: np.ndarray, scale: float | None = None, output_size: Sequence[int] | None = None,
              method: str = "nearest", antialias: bool | None = None) -> np.ndarray:
    """MATLAB ``imresize3(V, scale, method)`` or ``imresize3(V, [r c s], method)``.

    * Output size for a scale: ``ceil(scale · size)`` per axis, computed in
      double precision as MATLAB does (``0.65 · 200 = 130`` but a size whose
      product is not exact rounds up). ``scipy.ndimage.zoom`` instead rounds
      the size and samples corner-aligned grids, so it picks different voxels.
    * ``'nearest'`` returns the input's dtype (labels stay labels); the
      other methods return float32 (no intermediate rounding).

    Args:
        volume: 3D array ``(rows, columns, slices)``.
        scale: one factor for all axes, or ``output_size``: three sizes.
        method: ``'nearest'``, ``'linear'`` or ``'cubic'``.
        antialias: MATLAB's ``'Antialiasing'`` (default: on, except ``'nearest'``).
    """
    v = np.asarray(volume)
    if v.ndim != 3:
        raise ValueError(f"imresize3 needs a 3D volume, got shape {v.shape}")
    if (scale is None) == (output_size is None):
        raise ValueError("give either scale or output_size")
    if scale is not None:
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be positive, got {scale!r}")
        out = tuple(int(math.ceil(float(scale) * n)) for n in v.shape)
        scales = (float(scale),) * 3
    else:
        out = tuple(int(n) for n in output_size)  # type: ignore[union-attr]
        if len(out) != 3 or min(out) < 1:
            raise ValueError(f"output_size must be three positive sizes, got {output_size!r}")
        scales = tuple(o / n for o, n in zip(out, v.shape))
    if out == v.shape and all(s == 1 for s in scales):
        return v.copy()
    if method == "nearest":
        picks = []
        for n_in, n_out, s in zip(v.shape, out, scales):
            w, idx = resize_contributions(n_in, n_out, s, "nearest", antialias)
            picks.append(idx[np.arange(n_out), np.argmax(w, axis=1)])
        return v[np.ix_(*picks)]
    res = v.astype(np.float32)
    # MATLAB resizes the axis with the smallest scale first; for a linear
    # separable filter the order only changes float round-off.
    for axis in np.argsort(scales, kind="stable"):
        n_in, n_out, s = v.shape[axis], out[axis], scales[axis]
        w, idx = resize_contributions(n_in, n_out, s, method, antialias)
        mat = np.zeros((n_out, n_in), dtype=np.float64)
        np.add.at(mat, (np.repeat(np.arange(n_out), w.shape[1]), idx.ravel()), w.ravel())
        res = np.moveaxis(np.tensordot(mat.astype(np.float32), res, axes=([1], [axis])), 0, axis)
    return np.ascontiguousarray(res, dtype=np.float32)


def imgaussfilt3(volume: np.ndarray, sigma: float) -> np.ndarray:
    """MATLAB ``imgaussfilt3(V, sigma)``: filter size ``2·ceil(2σ)+1``, replicated borders; float32 result.

    ``scipy.ndimage.gaussian_filter``'s defaults differ: it truncates at 4σ
    and reflects at the border. Both are set here to MATLAB's.
    """
    v = np.asarray(volume, dtype=np.float32)
    if sigma <= 0:
        return v.copy()
    radius = int(math.ceil(2 * sigma))
    return ndimage.gaussian_filter(v, sigma=float(sigma), mode="nearest", truncate=radius / float(sigma))


def regionprops_centroid(mask: np.ndarray) -> tuple[float, float, float]:
    """MATLAB ``regionprops(mask, 'Centroid')`` of one region: 1-based ``(x, y, z)``.

    MATLAB's Centroid lists the horizontal coordinate first: ``x`` is the
    COLUMN (second array axis), ``y`` the ROW (first axis), ``z`` the slice;
    and it counts from 1. A port that reads ``Centroid(1)`` as a row index
    crops around the transposed position. Use :func:`centroid_rcs` below the
    other way round.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 3:
        raise ValueError(f"expected a 3D mask, got shape {m.shape}")
    if not m.any():
        raise ValueError("empty region: no centroid")
    r, c, s = ndimage.center_of_mass(m)
    return (c + 1.0, r + 1.0, s + 1.0)


def centroid_rcs(centroid_xyz: Sequence[float]) -> tuple[float, float, float]:
    """A MATLAB Centroid ``(x, y, z)`` (1-based) as ``(row, column, slice)`` (still 1-based)."""
    x, y, z = centroid_xyz
    return (y, x, z)
