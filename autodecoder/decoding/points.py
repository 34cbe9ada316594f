"""Evaluating a trained decoder at arbitrary voxels of a grid, one frame at a time (the fast path).

:class:`PointDecoder` holds one code and one rotation; :meth:`PointDecoder.set_time` computes the
frame's per-layer biases once (:func:`autodecoder.model.forward.frame_biases`) and
:meth:`PointDecoder.evaluate` runs :func:`autodecoder.model.forward.forward_points` on cache-sized
chunks of voxels in worker threads, each with its own :class:`~autodecoder.model.forward.Workspace`.
The result does not depend on the chunk size or the number of threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from autodecoder.model.accel import Accel, single_thread_ops, worker_threads
from autodecoder.model.decoder import Decoder
from autodecoder.model.forward import Workspace, forward_points, frame_biases, split_layers
from autodecoder.model.points import rotated_points, rotation_matrices

#: Points per network call when decoding (cache-sized; the output does not depend on it).
DECODE_CHUNK = 8192


class PointDecoder:
    """Evaluate the decoder on voxels of a grid for one code and rotation, frame by frame.

    Args:
        decoder: the network (put in eval mode).
        code: (CodeLength,) latent code.
        angles: (3,) rotation angles (points are rotated as row vectors, ``xyz @ R``).
        dims: the grid ``(N0, N1, N2)``.
        device: where the network runs.
        chunk: points per network call.
        threads: worker threads on the CPU, each with its own chunks and one intra-op thread
            (``None``: torch's thread count). The output does not depend on it.
        accel: bf16 autocast and/or a compiled forward (then one thread), or None.

    :attr:`evaluations` counts the network evaluations (points) so far.
    """

    def __init__(self, decoder: Decoder, code: Any, angles: Any, dims: tuple[int, int, int],
                 device: torch.device | str = "cpu", chunk: int = DECODE_CHUNK, threads: int | None = None,
                 accel: Accel | None = None) -> None:
        self.decoder = decoder.eval()
        self.device = torch.device(device)
        self.dims = tuple(int(n) for n in dims)
        self.chunk = int(chunk)
        with torch.inference_mode():
            self.code = torch.as_tensor(np.asarray(code, dtype=np.float32), device=self.device).reshape(1, -1)
            self.rot = rotation_matrices(torch.as_tensor(np.asarray(angles, dtype=np.float32), device=self.device))
            self.layers = split_layers(decoder)
        self.accel = accel if accel is not None and (accel.autocast or accel.forward) else None
        # a compiled function is not to be entered from several threads at once
        self.threads = 1 if self.accel is not None and self.accel.forward else worker_threads(self.device, threads)
        self.evaluations = 0
        self._local = threading.local()
        self._biases: list[torch.Tensor] | None = None

    def _workspace(self) -> Workspace:
        work = getattr(self._local, "work", None)
        if work is None:
            work = self._local.work = Workspace(self.layers, self.chunk, self.device, self.layers[0].w.dtype)
        return work

    @torch.inference_mode()
    def set_time(self, t: float) -> None:
        """Select the frame time for the next :meth:`evaluate` calls."""
        time_t = torch.full((1,), float(t), dtype=torch.float32, device=self.device)
        self._biases = frame_biases(self.layers, self.code, time_t)

    @torch.inference_mode()
    def _run(self, index: torch.Tensor, out: torch.Tensor) -> None:
        self._forward(rotated_points(index, self.dims, self.rot)[None], out)

    @torch.inference_mode()  # also in worker threads, which do not inherit the mode
    def _forward(self, xyz: torch.Tensor, out: torch.Tensor) -> None:
        """The network at rotated points ``xyz`` (1, m, 3), into ``out`` (m,)."""
        if self.accel is not None:
            with self.accel.context():
                pred = (self.accel.forward or forward_points)(self.decoder, self.layers, self._biases, xyz)
            out.copy_(pred.float().reshape(-1))
        else:
            out.copy_(forward_points(self.decoder, self.layers, self._biases, xyz, self._workspace())[0])

    @torch.inference_mode()
    def evaluate(self, index: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """SDF (float32, on the CPU) at flat voxel indices ``index``, or at the whole grid when None."""
        n = int(np.prod(self.dims)) if index is None else len(index)
        if index is not None:
            index = torch.as_tensor(np.asarray(index, dtype=np.int64) if isinstance(index, np.ndarray) else index)
            index = index.to(self.device)

        def job(s: int, e: int, out: torch.Tensor) -> None:
            self._run(torch.arange(s, e, device=self.device) if index is None else index[s:e], out)
        return self._in_chunks(n, job)

    def _in_chunks(self, n: int, job) -> torch.Tensor:
        """Run ``job(start, end, out[start:end])`` over chunks of ``n`` points, in worker threads on the CPU."""
        if self._biases is None:
            raise RuntimeError("set_time() first")
        out = torch.empty(n, dtype=torch.float32, device=self.device)
        starts = list(range(0, n, self.chunk))

        def one(s: int) -> None:
            e = min(s + self.chunk, n)
            job(s, e, out[s:e])

        if self.threads > 1 and len(starts) > 1 and self.device.type == "cpu":
            with single_thread_ops(), ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(one, starts))
        else:
            for s in starts:
                one(s)
        self.evaluations += n
        return out.cpu()

    @torch.inference_mode()
    def evaluate_points(self, xyz: np.ndarray) -> np.ndarray:
        """SDF (float32 (m,)) at arbitrary model coordinates ``xyz`` (m, 3), rotated as the grid's points are."""
        pts = torch.as_tensor(np.asarray(xyz, dtype=np.float32), device=self.device)

        def job(s: int, e: int, out: torch.Tensor) -> None:
            self._forward((pts[s:e] @ self.rot)[None], out)
        return self._in_chunks(len(pts), job).numpy()

    def evaluator(self):
        """This decoder (time already set) as ``evaluate(flat int64 indices) -> float32 values`` for
        :func:`autodecoder.decoding.adaptive.decode_adaptive`."""
        def evaluate(index: np.ndarray) -> np.ndarray:
            return self.evaluate(torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64))).numpy()
        return evaluate
