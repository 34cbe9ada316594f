"""Decoding a sequence on a 3D grid at any resolution and frame count (SPEC §5).

The one grid decoder shared by ``reconstruct``, ``generate``, ``generate_filo``
and the evaluation: frames are yielded one at a time, so a caller can write
each to disk before the next is decoded.

Three ways, all yielding float32 ``(X, Y, Z)`` frames:

* the plain path (``fast=False``): rows ``[code, x, y, z, t]`` through
  ``Decoder.forward`` in chunks of ``subset_size`` points, as the original;
* the fast path (default): the same values (≤ 1e-5) with the per-frame terms
  computed once per frame, cache-sized chunks and worker threads
  (:class:`autodecoder.fastpath.PointDecoder`);
* adaptive extraction (``adaptive=True``): the fast path evaluated on a coarse
  lattice and then only in a narrow band around the level sets ``levels``
  (:mod:`autodecoder.adaptive`): the same ``sdf <= level`` masks and surfaces,
  the network's values in the band, interpolated values elsewhere.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np
import torch

from autodecoder.experiment.geometry import frame_times
from autodecoder.model.points import grid_points, rotation_matrices
from autodecoder.model.decoder import Decoder, assemble_inputs


@torch.inference_mode()
def decode_frames(decoder: Decoder, code: np.ndarray | torch.Tensor, angles: np.ndarray | torch.Tensor,
                  dims: tuple[int, int, int], n_frames: int, subset_size: int,
                  device: torch.device | str = "cpu", *, fast: bool = True, adaptive: bool = False,
                  levels: Iterable[float] = (0.0,), lipschitz: float | None = None, coarse: int | None = None,
                  threads: int | None = None, accel: Any = None, stats: dict | None = None,
                  frames: Iterable[int] | None = None) -> Iterator[np.ndarray]:
    """Yield the SDF of each frame as float32 ``(X, Y, Z)`` = ``dims``.

    Args:
        decoder: the trained network (put in eval mode here).
        code: (CodeLength,) latent code.
        angles: (3,) intrinsic XYZ Euler angles; every grid point is rotated
            as a row vector, ``xyz @ R``.
        dims: output grid ``(N0, N1, N2)``; voxel centres span [-1, 1].
        n_frames: frames spread evenly over time [-1, 1].
        subset_size: points per network call (``ReconstructionSubsetSize``); the
            fast path uses cache-sized chunks of at most this many points.
        device: where the network runs.
        fast: the fast path (default) or the plain path.
        adaptive: adaptive extraction (implies the fast path).
        levels: iso-levels kept exact by adaptive extraction (default 0).
        lipschitz: slope bound of adaptive extraction (default
            :func:`autodecoder.adaptive.lipschitz_bound`).
        coarse: first lattice step of adaptive extraction (default 8).
        threads: worker threads of the fast path (default: torch's thread count).
        accel: a :class:`autodecoder.fastpath.Accel` (bf16 autocast, compiled forward), or None.
        stats: if given, ``stats["evaluations"]`` counts network evaluations (and
            ``stats["band"]`` the voxels holding network values with ``adaptive``).
        frames: decode only these frame numbers (of the ``n_frames``), default all.
    """
    decoder.eval()
    device = torch.device(device)
    times = frame_times(n_frames)
    which = range(n_frames) if frames is None else list(frames)
    dims = tuple(int(n) for n in dims)
    if not (fast or adaptive):
        code_t = torch.as_tensor(np.asarray(code, dtype=np.float32), device=device).reshape(1, -1)
        rot = rotation_matrices(torch.as_tensor(np.asarray(angles, dtype=np.float32), device=device))
        xyz = grid_points(dims, device) @ rot  # (N, 3)
        n = xyz.shape[0]
        for f in which:
            time_t = torch.full((1,), float(times[f]), dtype=torch.float32, device=device)
            out = torch.empty(n, dtype=torch.float32, device=device)
            for s in range(0, n, subset_size):
                chunk = xyz[s:s + subset_size]
                out[s:s + len(chunk)] = decoder(assemble_inputs(code_t, chunk[None], time_t)).reshape(-1)
            if stats is not None:
                stats["evaluations"] = stats.get("evaluations", 0) + n
            yield out.reshape(dims).cpu().numpy()
        return
    from autodecoder.model.forward import DECODE_CHUNK, PointDecoder
    pd = PointDecoder(decoder, code, angles, dims, device, chunk=min(int(subset_size), DECODE_CHUNK),
                      threads=threads, autocast=getattr(accel, "autocast", None),
                      forward=getattr(accel, "forward", None))
    for f in which:
        pd.set_time(float(times[f]))
        if adaptive:
            from autodecoder.decoding.adaptive import COARSE, decode_adaptive, evaluator
            frame = decode_adaptive(evaluator(pd), dims, levels, lipschitz, COARSE if coarse is None else coarse,
                                    stats)
        else:
            frame = pd.evaluate().numpy().reshape(dims)
            if stats is not None:
                stats["evaluations"] = stats.get("evaluations", 0) + frame.size
        yield frame


def decode_options(specs: dict, device: torch.device | str = "cpu", adaptive: bool = False,
                   levels: Iterable[float] = (0.0,)) -> dict[str, Any]:
    """Keyword arguments of :func:`decode_frames` from resolved specs (``FastPath``, ``Threads``,
    ``AdaptiveSafety``, ``Bf16Autocast``, ``TF32Matmul``, ``Compile``) and the adaptive-extraction choice.

    ``levels``: the iso-levels adaptive extraction keeps exact (0 is always one).
    """
    from autodecoder.decoding.adaptive import SAFETY, lipschitz_bound
    from autodecoder.model.forward import Accel
    accel = Accel.from_specs(specs, device)
    return dict(fast=bool(specs.get("FastPath", True)), adaptive=bool(adaptive),
                levels=tuple(sorted({0.0, *(float(v) for v in levels)})), threads=specs.get("Threads"),
                lipschitz=lipschitz_bound(specs.get("AdaptiveSafety", SAFETY)),
                accel=accel if (accel.autocast or accel.forward) else None)
