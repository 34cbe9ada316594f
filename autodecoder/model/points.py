"""The network's points: voxel centres as tensors, and the rotations applied to them (docs/method.md §1, §4).

Coordinates come from :func:`autodecoder.experiment.geometry.axis_coords`. Rotations are intrinsic
"XYZ" Euler angles, ``R = Rx(a0) @ Ry(a1) @ Rz(a2)``, applied to points as row vectors:
``xyz_rot = xyz @ R``. Time is not rotated.
"""

from __future__ import annotations

import roma
import torch

from autodecoder.experiment.geometry import axis_coords as _axis_coords


def axis_coords(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Voxel-centre coordinates of one axis of length ``n``: float32 (n,), in [-1, 1]."""
    return torch.from_numpy(_axis_coords(n)).to(device)


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


def rotated_points(index: torch.Tensor, shape: tuple[int, int, int], rot: torch.Tensor) -> torch.Tensor:
    """Voxel centres of flat indices ``index`` (..., m) of a grid, rotated as row vectors by ``rot``
    ((3, 3), or (k, 3, 3) for k frames of ``index`` (k, m))."""
    xyz = index_to_points(index, shape)
    if rot.dim() == 2:
        return xyz @ rot
    return torch.bmm(xyz, rot)


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """Intrinsic "XYZ" Euler angles (..., 3) in radians → rotation matrices (..., 3, 3).

    Differentiable in ``angles`` (rotations are learned).
    """
    return roma.euler_to_rotmat("XYZ", angles)
