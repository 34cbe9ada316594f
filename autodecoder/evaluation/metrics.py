"""Overlap and surface-distance measures between binary shapes."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient ``2|A∩B| / (|A| + |B|)`` of two boolean arrays of one shape (1.0 when both are empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard index ``|A∩B| / |A∪B|`` of two boolean arrays of one shape (1.0 when both are empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else int(np.logical_and(a, b).sum()) / union


# --------------------------------------------------------------------------
# surface distances (boundary voxels, Euclidean distance transforms)

class SurfaceDistances(NamedTuple):
    """Symmetric surface distances between two masks, in voxels.

    Attributes:
        mean: mean over the boundary voxels of both masks of the distance to
            the other mask's boundary (average symmetric surface distance).
        p95: 95th percentile of those distances (the "HD95").
        max: their maximum (the Hausdorff distance of the boundaries).
    """

    mean: float
    p95: float
    max: float


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels of a boolean mask: inside voxels with a face-neighbour outside (or on the array edge)."""
    m = np.asarray(mask, dtype=bool)
    return m & ~binary_erosion(m, structure=generate_binary_structure(m.ndim, 1), border_value=0)


def surface_distances(a: np.ndarray, b: np.ndarray) -> SurfaceDistances:
    """Mean, 95th-percentile and maximum symmetric surface distance between masks ``a`` and ``b``, in voxels.

    For every boundary voxel of ``a`` (see :func:`boundary`) the Euclidean
    distance to the nearest boundary voxel of ``b`` is measured with
    :func:`scipy.ndimage.distance_transform_edt`, and the other way round; the
    statistics are over both sets together. Identical masks give 0. Both
    empty: 0; exactly one empty: ``inf`` (there is no surface to compare with).
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    has_a, has_b = bool(a.any()), bool(b.any())
    if not has_a and not has_b:
        return SurfaceDistances(0.0, 0.0, 0.0)
    if not (has_a and has_b):
        return SurfaceDistances(math.inf, math.inf, math.inf)
    # Every boundary voxel lies in the bounding box of the union: work there only.
    union = a | b
    box = tuple(slice(int(idx.min()), int(idx.max()) + 1) for idx in np.nonzero(union))
    ba, bb = boundary(a)[box], boundary(b)[box]
    d_ab = distance_transform_edt(~bb)[ba]  # from a's boundary to b's
    d_ba = distance_transform_edt(~ba)[bb]
    d = np.concatenate([d_ab, d_ba])
    return SurfaceDistances(float(d.mean()), float(np.percentile(d, 95)), float(d.max()))
