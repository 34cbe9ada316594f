"""The coordinates every stage shares (docs/method.md §1): voxel centres and frame times.

* A grid of shape ``(N0, N1, N2)`` has voxel ``(i, j, k)`` at ``x = (i / (N0 - 1) - 0.5) · 2``
  (likewise ``y``, ``z``), computed in float32 in that order, so voxel centres span [-1, 1]. An axis
  of length 1 sits at -1 (every axis is guarded; the original guards only the first).
* Frame ``t`` of ``T`` sits at time ``t / (T - 1) · 2 - 1``; a single frame sits at 0.

This is the one builder of grid coordinates: the network's points (:mod:`autodecoder.model.points`),
the phantoms, mesh vertices and pictures all take their coordinates from here.
"""

from __future__ import annotations

import numpy as np


def axis_coords(n: int) -> np.ndarray:
    """Voxel-centre coordinates of one axis of length ``n``: float32 ``(n,)`` in [-1, 1]."""
    i = np.arange(n, dtype=np.float32)
    return (i / np.float32(max(n - 1, 1)) - np.float32(0.5)) * np.float32(2.0)


def index_to_coords(index: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """Continuous voxel indices (e.g. mesh vertices) along axes of ``n`` voxels → coordinates in [-1, 1],
    float64 (the same mapping as :func:`axis_coords`, for positions between voxel centres)."""
    n = np.maximum(np.asarray(n, dtype=np.float64) - 1, 1)
    return (np.asarray(index, dtype=np.float64) / n - 0.5) * 2.0


def voxel_size(n: int) -> float:
    """Distance between neighbouring voxel centres on an axis of ``n`` voxels, in grid units."""
    return 2.0 / max(n - 1, 1)


def frame_times(n_frames: int) -> np.ndarray:
    """Times of ``n_frames`` evenly spread frames: float32 ``(T,)`` in [-1, 1] (0 for T = 1)."""
    if n_frames == 1:
        return np.zeros(1, dtype=np.float32)
    t = np.arange(n_frames, dtype=np.float64)
    return (t / (n_frames - 1) * 2 - 1).astype(np.float32)
