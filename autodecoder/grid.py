"""Decoding a sequence on a dense 3D grid at any resolution and frame count (SPEC §5).

The one grid decoder shared by ``reconstruct``, ``generate``, ``generate_filo``
and the evaluation: frames are yielded one at a time, so a caller can write
each to disk before the next is decoded.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .geometry import frame_times, grid_points, rotation_matrices
from .model import Decoder, assemble_inputs


@torch.inference_mode()
def decode_frames(decoder: Decoder, code: np.ndarray | torch.Tensor, angles: np.ndarray | torch.Tensor,
                  dims: tuple[int, int, int], n_frames: int, subset_size: int,
                  device: torch.device | str = "cpu") -> Iterator[np.ndarray]:
    """Yield the SDF of each frame as float32 ``(X, Y, Z)`` = ``dims``.

    Args:
        decoder: the trained network (put in eval mode here).
        code: (CodeLength,) latent code.
        angles: (3,) intrinsic XYZ Euler angles; every grid point is rotated
            as a row vector, ``xyz @ R``.
        dims: output grid ``(N0, N1, N2)``; voxel centres span [-1, 1].
        n_frames: frames spread evenly over time [-1, 1].
        subset_size: points per network call (``ReconstructionSubsetSize``).
        device: where the network runs.
    """
    decoder.eval()
    device = torch.device(device)
    code_t = torch.as_tensor(np.asarray(code, dtype=np.float32), device=device).reshape(1, -1)
    rot = rotation_matrices(torch.as_tensor(np.asarray(angles, dtype=np.float32), device=device))
    xyz = grid_points(tuple(dims), device) @ rot  # (N, 3)
    n = xyz.shape[0]
    for t in frame_times(n_frames):
        time_t = torch.full((1,), float(t), dtype=torch.float32, device=device)
        out = torch.empty(n, dtype=torch.float32, device=device)
        for s in range(0, n, subset_size):
            chunk = xyz[s:s + subset_size]
            out[s:s + len(chunk)] = decoder(assemble_inputs(code_t, chunk[None], time_t)).reshape(-1)
        yield out.reshape(tuple(dims)).cpu().numpy()
