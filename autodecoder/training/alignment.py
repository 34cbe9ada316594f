"""Initial rotations from principal axes: every training cell starts in one canonical pose.

With ``"InitialRotations": "principal_axes"`` (specs; the original draws small random angles,
docs/method.md §4) each sequence's rotation starts at the one that turns the principal axes of its
inside region (``sdf ≤ 0``, all frames pooled) onto the coordinate axes: the longest axis on x, the
shortest on z. The network then sees every cell in the same pose from the first step, so the codes
need not encode orientation — without it, a dividing cell's division axis points wherever the data
put it, codes encode it, and a code between two learned codes decodes to a blend of two differently
oriented cells (flatter than any real one; ``benchmarks/generation_quality.py``). Learned rotations
(``OptimizeRot``) go on from there.

Axes are signed so that the inside region's third central moment along the first two is positive
(the heavier tail, e.g. a filopodium or the larger daughter, on the + side), the third completing a
right-handed frame; a shape symmetric under a flip keeps whichever sign numerical noise gives, which
is harmless for the same reason.

Conventions (:mod:`autodecoder.model.points`): points are rotated as row vectors, ``c = xyz @ R``,
so the columns of ``R`` are the principal axes in data coordinates and ``c`` the coordinates along
them; ``R = Rx(a0)·Ry(a1)·Rz(a2)`` (intrinsic "XYZ").
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import roma
import torch

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.geometry import axis_coords
from autodecoder.experiment.keys import INITIAL_ROTATIONS
from autodecoder.io.sequences import SequenceFile

__all__ = ["INITIAL_ROTATIONS", "Moments", "principal_axes", "principal_axes_angles", "initial_angles"]


class Moments:
    """Raw moments (count, first, second, third) of voxel-centre coordinates in [-1, 1], accumulated
    frame by frame, so that a long sequence never needs all its inside points at once."""

    def __init__(self) -> None:
        self.n = 0
        self.s1 = np.zeros(3)
        self.s2 = np.zeros((3, 3))
        self.s3 = np.zeros((3, 3, 3))

    def add(self, inside: np.ndarray) -> None:
        """Add the ``True`` voxels of a bool frame ``(X, Y, Z)``."""
        idx = np.nonzero(inside)
        if len(idx[0]) == 0:
            return
        p = np.stack([axis_coords(n)[i] for n, i in zip(inside.shape, idx)], axis=1).astype(np.float64)
        self.n += len(p)
        self.s1 += p.sum(0)
        self.s2 += p.T @ p
        self.s3 += np.einsum("ni,nj,nk->ijk", p, p, p, optimize=True)

    def axes(self) -> np.ndarray:
        """The principal axes as the columns of a rotation matrix (3, 3), float64: longest first,
        signed by the third central moment (module docstring)."""
        if self.n < 4:
            raise ValueError("principal axes need at least 4 inside voxels")
        m = self.s1 / self.n
        cov = self.s2 / self.n - np.outer(m, m)
        _, vecs = np.linalg.eigh(cov)
        r = vecs[:, ::-1].copy()  # descending variance
        for k in range(2):
            v = r[:, k]
            mv = float(m @ v)
            third = (np.einsum("ijk,i,j,k->", self.s3, v, v, v) / self.n
                     - 3 * mv * float(v @ self.s2 @ v) / self.n + 2 * mv ** 3)
            if third < 0:
                r[:, k] = -v
        r[:, 2] = np.cross(r[:, 0], r[:, 1])
        return r


def principal_axes(masks: Iterable[np.ndarray]) -> np.ndarray:
    """The principal axes (3, 3) of the inside voxels of bool frames ``(X, Y, Z)`` pooled (module docstring)."""
    acc = Moments()
    for m in masks:
        acc.add(np.asarray(m, dtype=bool))
    return acc.axes()


def _angles(rot: np.ndarray) -> np.ndarray:
    return roma.rotmat_to_euler("XYZ", torch.as_tensor(rot, dtype=torch.float64)).numpy().astype(np.float32)


def principal_axes_angles(sdf: np.ndarray) -> np.ndarray:
    """Euler angles (3,) float32 of the rotation that puts an SDF sequence ``(T, X, Y, Z)`` (or one
    frame ``(X, Y, Z)``) in its principal-axes pose: ``xyz @ R`` are coordinates along its axes."""
    sdf = np.asarray(sdf)
    frames = sdf[None] if sdf.ndim == 3 else sdf
    return _angles(principal_axes(f <= 0 for f in frames))


def initial_angles(files: Sequence[Path]) -> torch.Tensor:
    """Per training file, the angles of its principal-axes pose → float32 (len(files), 3); the files are
    read frame by frame. A file without four inside voxels in all its frames is refused."""
    out = []
    for path in files:
        with SequenceFile(path) as f:
            try:
                out.append(_angles(principal_axes(frame <= 0 for frame in f.frames())))
            except ValueError:
                raise UserError(f"{path}: \"InitialRotations\": \"principal_axes\" needs a cell (sdf <= 0) in "
                                "its frames; this file has fewer than 4 inside voxels in all of them") from None
    return torch.from_numpy(np.stack(out))
