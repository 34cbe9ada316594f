"""Decoding a sequence on a 3D grid at any resolution and frame count (docs/method.md §5).

The one grid decoder of ``test.py``, the evaluation, the benchmarks and the synthesis: frames are
yielded one at a time, so a caller can write each to disk before the next is decoded. Three ways,
all yielding float32 ``(X, Y, Z)`` frames:

* the plain path (``fast=False``): rows ``[code, x, y, z, t]`` through ``Decoder.forward`` in chunks
  of ``subset_size`` points, as the original (:func:`autodecoder.model.reference.reference_frame`);
* the fast path (default): the same values (≤ 1e-5) with the per-frame terms computed once per
  frame, cache-sized chunks and worker threads (:class:`autodecoder.decoding.points.PointDecoder`);
* adaptive extraction (``adaptive=True``): the fast path on a coarse lattice, then only in a narrow
  band around the level sets ``levels`` (:mod:`autodecoder.decoding.adaptive`): the same
  ``sdf <= level`` masks and surfaces, the network's values in the band, interpolated values elsewhere.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch

from autodecoder.decoding.adaptive import COARSE, decode_adaptive
from autodecoder.decoding.points import DECODE_CHUNK, PointDecoder
from autodecoder.experiment.geometry import frame_times
from autodecoder.model.accel import Accel
from autodecoder.model.decoder import Decoder
from autodecoder.model.reference import reference_frame


@torch.inference_mode()
def decode_frames(decoder: Decoder, code: np.ndarray | torch.Tensor, angles: np.ndarray | torch.Tensor,
                  dims: tuple[int, int, int], n_frames: int, subset_size: int,
                  device: torch.device | str = "cpu", *, fast: bool = True, adaptive: bool = False,
                  levels: Iterable[float] = (0.0,), lipschitz: float | None = None, coarse: int = COARSE,
                  threads: int | None = None, accel: Accel | None = None, stats: dict | None = None,
                  frames: Iterable[int] | None = None) -> Iterator[np.ndarray]:
    """Yield the SDF of each frame as float32 ``(X, Y, Z)`` = ``dims``.

    Args:
        decoder: the trained network (put in eval mode here).
        code: (CodeLength,) latent code.
        angles: (3,) intrinsic XYZ Euler angles; every grid point is rotated as a row vector, ``xyz @ R``.
        dims: output grid ``(N0, N1, N2)``; voxel centres span [-1, 1].
        n_frames: frames spread evenly over time [-1, 1].
        subset_size: points per network call (``ReconstructionSubsetSize``); the fast path uses
            cache-sized chunks of at most this many points.
        device: where the network runs.
        fast: the fast path (default) or the plain path.
        adaptive: adaptive extraction (implies the fast path).
        levels: iso-levels kept exact by adaptive extraction (default 0).
        lipschitz: slope bound of adaptive extraction (default :func:`autodecoder.decoding.adaptive.lipschitz_bound`).
        coarse: first lattice step of adaptive extraction.
        threads: worker threads of the fast path (default: torch's thread count).
        accel: bf16 autocast and/or a compiled forward (:class:`autodecoder.model.accel.Accel`), or None.
        stats: if given, ``stats["evaluations"]`` counts network evaluations (see ``decode_adaptive``
            for ``stats["exact"]``).
        frames: decode only these frame numbers (of the ``n_frames``), default all.
    """
    decoder.eval()
    device = torch.device(device)
    times = frame_times(n_frames)
    which = range(n_frames) if frames is None else list(frames)
    dims = tuple(int(n) for n in dims)
    pd = None
    if fast or adaptive:
        pd = PointDecoder(decoder, code, angles, dims, device, chunk=min(int(subset_size), DECODE_CHUNK),
                          threads=threads, accel=accel)
    for f in which:
        if pd is None:
            frame = reference_frame(decoder, code, angles, dims, float(times[f]), subset_size, device)
        else:
            pd.set_time(float(times[f]))
            if adaptive:
                frame = decode_adaptive(pd.evaluator(), dims, levels, lipschitz, coarse, stats)
            else:
                frame = pd.evaluate().numpy().reshape(dims)
        if stats is not None and not adaptive:
            stats["evaluations"] = stats.get("evaluations", 0) + frame.size
        yield frame
