"""The original's mathematics written plainly (docs/method.md §3–§5): the yardstick of the fast path.

Rows ``[code, x, y, z, t]`` go through ``Decoder.forward`` as the original feeds them. This is what
the tests compare :mod:`autodecoder.model.forward` against (with the original's fixtures), what
``"FastPath": false`` runs, and what training falls back to where the fast path is not exact
(dropout). It is kept short on purpose; speed lives in the fast path.
"""

from __future__ import annotations

import numpy as np
import torch

from autodecoder.model.decoder import Decoder
from autodecoder.model.points import grid_points, rotation_matrices


def assemble_inputs(codes: torch.Tensor, xyz: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Decoder input rows ``[code, x, y, z, t]`` for B frames of n points each.

    Args:
        codes: (B, CodeLength), one code per frame.
        xyz: (B, n, 3) point coordinates (already rotated).
        times: (B,) frame times.
    Returns:
        (B·n, CodeLength + 4).
    """
    b, n, _ = xyz.shape
    return torch.cat([codes[:, None, :].expand(b, n, codes.shape[1]), xyz,
                      times[:, None, None].expand(b, n, 1).to(xyz.dtype)], dim=-1).reshape(b * n, -1)


def reference_loss(decoder: Decoder, codes: torch.Tensor, angles: torch.Tensor, batch, clamp: float | None,
                   code_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(SDF loss, code-regularisation loss) of a batch (``points`` (B, n, 3), ``sdf`` (B, n), ``times``
    (B,), ``seq_ids`` (B,)): the mean absolute error over all points (both sides clamped to ±``clamp``
    when given), and ``code_weight`` × the mean code norm per point (frames have equal point counts)."""
    frame_codes = codes[batch.seq_ids]
    xyz = torch.bmm(batch.points, rotation_matrices(angles[batch.seq_ids]))  # row vectors: xyz @ R
    pred = decoder(assemble_inputs(frame_codes, xyz, batch.times)).reshape(batch.sdf.shape)
    target = batch.sdf
    if clamp is not None:
        pred, target = pred.clamp(-clamp, clamp), target.clamp(-clamp, clamp)
    sdf_loss = (pred - target).abs().mean()
    code_loss = code_weight * frame_codes.norm(dim=1).mean() if code_weight else torch.zeros((), device=pred.device)
    return sdf_loss, code_loss


@torch.inference_mode()
def reference_frame(decoder: Decoder, code: np.ndarray, angles: np.ndarray, dims: tuple[int, int, int],
                    time: float, subset_size: int, device: torch.device) -> np.ndarray:
    """One frame, float32 ``dims``: every voxel centre rotated by ``angles`` and decoded in chunks of
    ``subset_size`` rows, as the original decodes."""
    code_t = torch.as_tensor(np.asarray(code, dtype=np.float32), device=device).reshape(1, -1)
    rot = rotation_matrices(torch.as_tensor(np.asarray(angles, dtype=np.float32), device=device))
    xyz = grid_points(dims, device) @ rot
    time_t = torch.full((1,), float(time), dtype=torch.float32, device=device)
    out = torch.empty(xyz.shape[0], dtype=torch.float32, device=device)
    for s in range(0, xyz.shape[0], subset_size):
        chunk = xyz[s:s + subset_size]
        out[s:s + len(chunk)] = decoder(assemble_inputs(code_t, chunk[None], time_t)).reshape(-1)
    return out.reshape(dims).cpu().numpy()
