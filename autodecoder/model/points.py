"""Coordinates of voxels and frames, and the rotations applied to them (SPEC §1, §4).

Conventions used throughout the package:

* A grid of shape ``(N0, N1, N2)`` has voxel ``(i, j, k)`` at
  ``x = (i / (N0 - 1) - 0.5) * 2`` (likewise ``y``, ``z``), computed in float32
  in that order, so voxel centres span [-1, 1]. An axis of length 1 sits at -1
  (every axis is guarded; the original guards only the first).
* Frame ``t`` of ``T`` sits at time ``t / (T - 1) * 2 - 1``; a single frame sits at 0.
* Rotations are intrinsic "XYZ" Euler angles, ``R = Rx(a0) @ Ry(a1) @ Rz(a2)``,
  applied to points as row vectors: ``xyz_rot = xyz @ R``. Time is not rotated.
"""

from __future__ import annotations

import numpy as np
import roma
import torch


def axis_coords(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Voxel-centre coordinates of one axis of length ``n``: float32 (n,), in [-1, 1]."""
    i = torch.arange(n, dtype=torch.float32, device=device)
    return (i / max(n - 1, 1) - 0.5) * 2


def grid_points(shape: tuple[int, int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """All voxel centres of a grid, float32 (N0·N1·N2, 3), in C order (``k`` fastest)."""
    axes = [axis_coords(n, device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def index_to_points(flat_index: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Coordinates of voxels given by flat C-order indices (any shape) → float32 (..., 3)."""
    n0, n1, n2 = shape
    k = flat_index % n2
    j = (flat_index // n2) % n1
    i = flat_index // (n1 * n2)
    dev = flat_index.device
    return torch.stack([axis_coords(n0, dev)[i], axis_coords(n1, dev)[j], axis_coords(n2, dev)[k]], dim=-1)


def frame_times(n_frames: int) -> np.ndarray:
    """Times of ``n_frames`` evenly spread frames: float32 (T,), in [-1, 1] (0 for T = 1)."""
    if n_frames == 1:
        return np.zeros(1, dtype=np.float32)
    t = np.arange(n_frames, dtype=np.float64)
    return (t / (n_frames - 1) * 2 - 1).astype(np.float32)


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """Intrinsic "XYZ" Euler angles (..., 3) in radians → rotation matrices (..., 3, 3).

    Differentiable in ``angles`` (rotations are learned).
    """
    return roma.euler_to_rotmat("XYZ", angles)
