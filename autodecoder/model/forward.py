"""The fast path: the decoder of :mod:`autodecoder.model`, computed with less work.

Same parameters, same state dict, same mathematics as ``Decoder.forward`` on
rows ``[code, x, y, z, t]`` (the "plain path"); only the order of the
floating-point operations differs. Three rewrites:

1. **Per-frame terms once per frame.** A layer that reads the code (``lin0``
   and every ``latent_in`` layer) computes ``W·[h, code, x, y, z, t] + b``.
   Splitting ``W`` into column blocks, ``W_code·code + W_t·t + b`` is the same
   for every point of a frame (the time too is constant within a frame): it is
   computed once per frame as that layer's bias, and per point only
   ``W_h·h + W_xyz·xyz`` remains. ``lin0`` shrinks from ``CodeLength + 4`` to
   3 inputs per point and each ``latent_in`` layer by ``CodeLength + 1``; no
   code is ever copied to every point.
2. **The sine factor in the weights.** ``sin(30·(W x + b)) = sin((30 W) x +
   30 b)``: the factor is applied to the (small) weight matrices instead of to
   every activation (not on layers followed by a LayerNorm).
3. **Chunks.** The loss of a batch is a sum over points, so forward and
   backward passes go chunk by chunk and the gradients accumulate
   (:func:`loss_and_backward`): activation memory is bounded by the chunk, not
   by the batch. Decoding (:func:`decode_points`) reuses preallocated buffers
   and computes the sine in place.

Where a rewrite does not hold the callers use the plain path instead
(:func:`fast_path_applies`): while training with ``latent_dropout`` (a fresh
dropout mask on every point's copy of the code) or hidden-layer dropout (the
plain path draws one mask per layer for the whole batch; chunks would consume
the random stream in another order).
"""

from __future__ import annotations

import contextlib
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autodecoder.model.points import index_to_points, rotation_matrices
from autodecoder.model.decoder import N_COORDS, OMEGA, Decoder

#: Points per forward/backward pass when training on the fast path (default of ``TrainChunkSize``).
TRAIN_CHUNK = 8192
#: Points per network call when decoding on the fast path (cache-sized; the output does not depend on it).
DECODE_CHUNK = 8192


# --------------------------------------------------------------------------
# the split layers

@dataclass
class SplitLayer:
    """One layer, its weight split by input blocks (already multiplied by ``scale``).

    Attributes:
        w: weights on the per-point inputs ``[h, x, y, z]`` (``[x, y, z]`` for layer 0), (out, in).
        n_h: width of the previous layer's features in ``w`` (0 for layer 0).
        has_xyz: whether the last three columns of ``w`` read ``x, y, z``.
        w_code: (out, CodeLength) weights on the code, or None.
        w_t: (out,) weights on the time, or None.
        bias: (out,).
        folded: the sine factor is folded into ``w``, ``w_code``, ``w_t`` and ``bias``.
        norm: the LayerNorm after this layer, or None.
        last: the output layer.
    """

    w: torch.Tensor
    n_h: int
    has_xyz: bool
    w_code: torch.Tensor | None
    w_t: torch.Tensor | None
    bias: torch.Tensor
    folded: bool
    norm: nn.Module | None
    last: bool


def fast_path_applies(decoder: Decoder, training: bool) -> bool:
    """True when the fast path computes exactly the plain path's function (see the module notes)."""
    if not training:
        return True
    if decoder.latent_dropout:
        return False
    if decoder.dropout and decoder.dropout_prob > 0:
        return False
    return True


def split_layers(decoder: Decoder) -> list[SplitLayer]:
    """The decoder's layers as :class:`SplitLayer` (differentiable views of its parameters)."""
    c = decoder.code_length
    n = decoder.num_layers
    out: list[SplitLayer] = []
    for l in range(n):
        lin = getattr(decoder, f"lin{l}")
        w, b = lin.weight, lin.bias
        last = l == n - 1
        norm = getattr(decoder, f"bn{l}", None) if not last else None
        folded = decoder.use_sine and not last and norm is None
        if l == 0:
            w_h, w_code, w_xyz, w_t = None, w[:, :c], w[:, c:c + 3], w[:, c + 3]
        elif l in decoder.latent_in:
            h = w.shape[1] - c - N_COORDS
            w_h, w_code, w_xyz, w_t = w[:, :h], w[:, h:h + c], w[:, h + c:h + c + 3], w[:, h + c + 3]
        elif decoder.xyz_in_all:
            h = w.shape[1] - N_COORDS
            w_h, w_code, w_xyz, w_t = w[:, :h], None, w[:, h:h + 3], w[:, h + 3]
        else:
            w_h, w_code, w_xyz, w_t = w, None, None, None
        if w_h is None:
            w_pt = w_xyz
        elif w_xyz is None:
            w_pt = w_h
        else:
            w_pt = torch.cat([w_h, w_xyz], 1)
        if folded:
            w_pt, b = w_pt * OMEGA, b * OMEGA
            w_code = None if w_code is None else w_code * OMEGA
            w_t = None if w_t is None else w_t * OMEGA
        out.append(SplitLayer(w_pt, 0 if w_h is None else w_h.shape[1], w_xyz is not None, w_code, w_t, b,
                              folded, norm, last))
    return out


def frame_biases(layers: list[SplitLayer], codes: torch.Tensor, times: torch.Tensor) -> list[torch.Tensor]:
    """Per-frame biases of every layer: ``bias + W_code·code + W_t·t``, each (k, out), for k frames."""
    out = []
    for L in layers:
        b = L.bias.expand(codes.shape[0], -1)
        if L.w_code is not None:
            b = b + codes @ L.w_code.t()
        if L.w_t is not None:
            b = b + times[:, None].to(L.w_t.dtype) * L.w_t
        out.append(b)
    return out


class _NumpySine(torch.autograd.Function):
    """``sin`` with NumPy's SIMD kernels (about 2x faster than torch's on the CPU; both within
    about 1 ulp); backward ``grad · cos``."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z)
        return torch.from_numpy(np.sin(z.detach().numpy()))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        return torch.from_numpy(np.cos(z.detach().numpy())).mul_(grad)


def _sine(z: torch.Tensor) -> torch.Tensor:
    if z.device.type == "cpu" and z.dtype == torch.float32 and not torch.compiler.is_compiling():
        return _NumpySine.apply(z)
    return torch.sin(z)


def _activate(decoder: Decoder, L: SplitLayer, z: torch.Tensor) -> torch.Tensor:
    if L.norm is not None:
        z = L.norm(z)
    if decoder.use_sine:
        return _sine(z) if L.folded else _sine(OMEGA * z)
    return F.relu(z)


def forward_points(decoder: Decoder, layers: list[SplitLayer], biases: list[torch.Tensor],
                   xyz: torch.Tensor) -> torch.Tensor:
    """SDF of ``k`` frames of ``m`` points: ``xyz`` (k, m, 3) → (k, m). Differentiable.

    ``biases`` come from :func:`frame_biases` for the same ``k`` frames.
    """
    k, m, _ = xyz.shape
    x = None
    z = None
    for L, b in zip(layers, biases):
        if x is None:  # layer 0 reads only x, y, z: cheap, and kept in float32 under autocast
            with torch.autocast(device_type=xyz.device.type, enabled=False):
                z = (xyz.reshape(k * m, -1).float() @ L.w.float().t()).view(k, m, -1)
        else:
            inp = torch.cat([x, xyz.to(x.dtype)], -1) if L.has_xyz else x
            z = (inp.reshape(k * m, -1) @ L.w.t()).view(k, m, -1)
        z = z + b[:, None, :]
        if L.last:
            if decoder.use_tanh:
                z = torch.tanh(z)
        else:
            x = _activate(decoder, L, z)
    return z[..., 0]


def rotated_points(index: torch.Tensor, shape: tuple[int, int, int], rot: torch.Tensor) -> torch.Tensor:
    """Voxel centres of flat indices ``index`` (..., m) of a grid, rotated as row vectors by ``rot``."""
    xyz = index_to_points(index, shape)
    if rot.dim() == 2:
        return xyz @ rot
    return torch.bmm(xyz, rot)


# --------------------------------------------------------------------------
# training

#: The number of chunks of a batch is rounded up to a multiple of this, so that worker threads share the work.
CHUNK_GRAIN = 4


def chunk_slices(n_frames: int, n_points: int, chunk: int) -> list[tuple[slice, slice]]:
    """(frames, points) slices covering a (n_frames, n_points) batch, at most about ``chunk`` points each.

    Whole frames are grouped when they are smaller than a chunk; larger frames
    are cut in equal pieces. The count is a multiple of :data:`CHUNK_GRAIN`
    where possible, and depends only on the batch shape and ``chunk``.
    """
    total = n_frames * n_points
    count = -(-total // max(int(chunk), 1))
    count = -(-count // CHUNK_GRAIN) * CHUNK_GRAIN
    if count <= n_frames:
        k = -(-n_frames // count)
        return [(slice(f, min(f + k, n_frames)), slice(0, n_points)) for f in range(0, n_frames, k)]
    per_frame = -(-count // n_frames)
    piece = -(-n_points // per_frame)
    return [(slice(f, f + 1), slice(p, min(p + piece, n_points)))
            for f in range(n_frames) for p in range(0, n_points, piece)]


def loss_clamp(specs: dict) -> float | None:
    """The ``ClampingDistance`` both sides of the loss are clamped to, or None (``ClampSDFminmax`` off)."""
    return specs["ClampingDistance"] if specs["ClampSDFminmax"] else None


def chunk_error(decoder: Decoder, codes: torch.Tensor, angles: torch.Tensor, batch: Any,
                piece: tuple[slice, slice], clamp: float | None,
                autocast: Callable[[], Any] | None = None,
                forward: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
    """Sum of |prediction - target| over the (frames, points) slice ``piece`` of ``batch`` (a scalar tensor).

    Both sides are clamped to ±``clamp`` when it is given. ``batch`` as in
    :func:`loss_and_backward`.
    """
    fs, ps = piece
    s = batch.seq_ids[fs]
    rot = rotation_matrices(angles[s])                     # (k, 3, 3)
    index = getattr(batch, "index", None)
    if index is not None:
        xyz = rotated_points(index[fs, ps].long(), batch.grid_shape, rot)
    else:
        xyz = torch.bmm(batch.points[fs, ps], rot)
    target = batch.sdf[fs, ps].float()
    with (autocast or contextlib.nullcontext)():
        layers = split_layers(decoder)
        biases = frame_biases(layers, codes[s], batch.times[fs])
        pred = (forward or forward_points)(decoder, layers, biases, xyz)
    pred = pred.float()
    if clamp is not None:
        pred, target = pred.clamp(-clamp, clamp), target.clamp(-clamp, clamp)
    return (pred - target).abs().sum()


def loss_and_backward(decoder: Decoder, codes: torch.Tensor, angles: torch.Tensor, batch: Any,
                      specs: dict, code_weight: float, chunk: int = TRAIN_CHUNK,
                      autocast: Callable[[], Any] | None = None,
                      forward: Callable[..., torch.Tensor] | None = None,
                      threads: int | None = None) -> tuple[float, float]:
    """Accumulate the gradients of one batch's loss, chunk by chunk; return (SDF loss, code loss).

    The same loss as :func:`autodecoder.training.batch_loss` (mean absolute
    error over all points of the batch, code regularisation
    ``code_weight · mean code norm``), and the same gradients up to float
    rounding, computed with activation memory bounded by ``chunk`` points
    (per worker thread).

    ``batch`` holds either ``points`` (B, n, 3) or grid ``index`` (B, n) with
    ``grid_shape``; ``sdf`` (B, n); ``times`` (B,); ``seq_ids`` (B,).
    ``threads``: worker threads on the CPU, each running whole chunks on one
    intra-op thread (default ``torch.get_num_threads()``; 1 on a GPU). Each
    chunk's gradients are computed separately and summed in chunk order, so the
    result does not depend on the number of threads.
    """
    seq = batch.seq_ids
    n_frames, n_points = batch.sdf.shape
    total = n_frames * n_points
    clamp = loss_clamp(specs)
    device = batch.sdf.device
    if threads is None:
        threads = torch.get_num_threads() if device.type == "cpu" else 1
    if forward not in (None, forward_points):
        threads = 1  # a compiled function is not to be entered from several threads at once
    params = [p for p in decoder.parameters() if p.requires_grad]
    code_pos = len(params)
    params.append(codes)
    if angles.requires_grad:
        params.append(angles)

    def work(piece: tuple[slice, slice]) -> tuple[float, tuple[torch.Tensor | None, ...]]:
        part = chunk_error(decoder, codes, angles, batch, piece, clamp, autocast, forward)
        grads = torch.autograd.grad(part / total, params, allow_unused=True)
        return part.item(), grads

    pieces = chunk_slices(n_frames, n_points, chunk)
    acc: list[torch.Tensor | None] = [None] * len(params)
    sdf_sum = 0.0

    def gather(results: Iterator[tuple[float, tuple[torch.Tensor | None, ...]]]) -> float:
        total_part = 0.0
        for part, grads in results:  # in chunk order, whatever the threads
            total_part += part
            for i, g in enumerate(grads):
                if g is not None:
                    acc[i] = g if acc[i] is None else acc[i].add_(g)
        return total_part

    if threads > 1 and len(pieces) > 1 and device.type == "cpu":
        with single_thread_ops(), ThreadPoolExecutor(min(threads, len(pieces))) as pool:
            sdf_sum = gather(pool.map(work, pieces))
    else:
        sdf_sum = gather(map(work, pieces))
    code_loss = 0.0
    if code_weight:
        cl = code_weight * codes[seq].norm(dim=1).mean()
        g = torch.autograd.grad(cl, codes)[0]
        acc[code_pos] = g if acc[code_pos] is None else acc[code_pos].add_(g)
        code_loss = cl.item()
    for p, g in zip(params, acc):
        if g is not None:
            p.grad = g if p.grad is None else p.grad + g
    return sdf_sum / total, code_loss


# --------------------------------------------------------------------------
# decoding

class _Buffers:
    """Per-thread work arrays for :func:`decode_points`: the input of every layer, xyz in its last columns."""

    def __init__(self, layers: list[SplitLayer], rows: int, device: torch.device, dtype: torch.dtype) -> None:
        self.rows = rows
        self.inputs = [torch.empty(rows, L.w.shape[1], device=device, dtype=dtype) for L in layers]
        self.z = {w: torch.empty(rows, w, device=device, dtype=dtype) for w in {L.w.shape[0] for L in layers}}


def _sin_into(z: torch.Tensor, out: torch.Tensor) -> None:
    if z.device.type == "cpu" and z.dtype == torch.float32:
        np.sin(z.numpy(), out=out.numpy())  # NumPy's SIMD sine is ~2x faster than torch's on CPU
    else:
        torch.sin(z, out=out)


@torch.inference_mode()
def decode_points(decoder: Decoder, layers: list[SplitLayer], biases: list[torch.Tensor], xyz: torch.Tensor,
                  out: torch.Tensor, buffers: _Buffers) -> None:
    """Inference on one frame: SDF of the points ``xyz`` (m, 3), m ≤ buffers.rows, written to ``out`` (m,).

    ``biases`` are this frame's (from :func:`frame_biases`, each (out,)).
    """
    m = xyz.shape[0]
    for l, (L, b) in enumerate(zip(layers, biases)):
        inp = buffers.inputs[l][:m]
        if L.has_xyz:
            inp[:, -3:] = xyz
        z = buffers.z[L.w.shape[0]][:m]
        torch.addmm(b, inp, L.w.t(), out=z)
        if L.last:
            if decoder.use_tanh:
                z = torch.tanh(z)
            out.copy_(z[:, 0])
            return
        nxt = buffers.inputs[l + 1][:m, :layers[l + 1].n_h]
        if L.norm is not None:
            z = L.norm(z)
        if decoder.use_sine:
            if not L.folded:
                z = z * OMEGA
            _sin_into(z, nxt)
        else:
            torch.clamp(z, min=0, out=nxt)


class PointDecoder:
    """Evaluate the decoder on arbitrary voxels of a grid for one code and rotation, frame by frame.

    Args:
        decoder: the network (put in eval mode).
        code: (CodeLength,) latent code.
        angles: (3,) rotation angles (points are rotated as row vectors, ``xyz @ R``).
        dims: the grid ``(N0, N1, N2)``.
        device: where the network runs.
        chunk: points per network call.
        threads: worker threads, each with its own chunks and one intra-op thread
            (on the CPU; ``None`` = ``torch.get_num_threads()``). Output does not depend on it.
        autocast: context manager factory for mixed precision, or None.
        forward: an alternative to :func:`decode_points` (e.g. compiled), or None.

    :attr:`evaluations` counts the network evaluations (points) so far.
    """

    def __init__(self, decoder: Decoder, code: Any, angles: Any, dims: tuple[int, int, int],
                 device: torch.device | str = "cpu", chunk: int = DECODE_CHUNK, threads: int | None = None,
                 autocast: Callable[[], Any] | None = None, forward: Callable[..., Any] | None = None) -> None:
        self.decoder = decoder.eval()
        self.device = torch.device(device)
        self.dims = tuple(int(n) for n in dims)
        self.chunk = int(chunk)
        with torch.inference_mode():
            self.code = torch.as_tensor(np.asarray(code, dtype=np.float32), device=self.device).reshape(1, -1)
            self.rot = rotation_matrices(torch.as_tensor(np.asarray(angles, dtype=np.float32), device=self.device))
            self.layers = split_layers(decoder)
        if threads is None:
            threads = torch.get_num_threads() if self.device.type == "cpu" else 1
        self.threads = 1 if forward is not None else max(1, int(threads))  # compiled code: one thread
        self.autocast = autocast
        self.forward = forward
        self.evaluations = 0
        self._local = threading.local()
        self._biases: list[torch.Tensor] | None = None

    def _buffers(self) -> _Buffers:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            dtype = self.layers[0].w.dtype
            buf = self._local.buf = _Buffers(self.layers, self.chunk, self.device, dtype)
        return buf

    @torch.inference_mode()
    def set_time(self, t: float) -> None:
        """Select the frame time for the next :meth:`evaluate` calls."""
        time_t = torch.full((1,), float(t), dtype=torch.float32, device=self.device)
        self._biases = [b[0] for b in frame_biases(self.layers, self.code, time_t)]

    @torch.inference_mode()
    def _run(self, index: torch.Tensor, out: torch.Tensor) -> None:
        xyz = rotated_points(index, self.dims, self.rot)
        if self.forward is not None or self.autocast is not None:
            ctx = self.autocast() if self.autocast is not None else contextlib.nullcontext()
            fwd = self.forward or forward_points
            with ctx:
                pred = fwd(self.decoder, self.layers, [b[None] for b in self._biases], xyz[None])
            out.copy_(pred.float().reshape(-1))
            return
        decode_points(self.decoder, self.layers, self._biases, xyz, out, self._buffers())

    @torch.inference_mode()
    def evaluate(self, index: torch.Tensor | np.ndarray | None = None, count: int | None = None) -> torch.Tensor:
        """SDF (float32, on the CPU) at flat voxel indices ``index``, or at the whole grid when None.

        ``count`` with ``index`` None: the first ``count`` voxels.
        """
        if self._biases is None:
            raise RuntimeError("set_time() first")
        n = int(np.prod(self.dims)) if index is None else len(index)
        if index is not None:
            index = torch.as_tensor(np.asarray(index, dtype=np.int64) if isinstance(index, np.ndarray) else index)
            index = index.to(self.device)
        out = torch.empty(n, dtype=torch.float32, device=self.device)
        starts = list(range(0, n, self.chunk))

        def job(s: int) -> None:
            e = min(s + self.chunk, n)
            idx = (torch.arange(s, e, device=self.device) if index is None else index[s:e])
            self._run(idx, out[s:e])

        if self.threads > 1 and len(starts) > 1 and self.device.type == "cpu":
            with single_thread_ops(), ThreadPoolExecutor(self.threads) as pool:
                for _ in pool.map(job, starts):
                    pass
        else:
            for s in starts:
                job(s)
        self.evaluations += n
        return out.cpu()


_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def single_thread_ops() -> Iterator[None]:
    """Run torch operations on one intra-op thread each (worker threads supply the parallelism)."""
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        yield
    finally:
        with _THREADS_LOCK:
            torch.set_num_threads(before)


# --------------------------------------------------------------------------
# GPU options: bf16 autocast, TF32 matmuls, torch.compile (all off by default)

@dataclass
class Accel:
    """The speed options of the specs, resolved for one device.

    Attributes:
        autocast: a factory of the bf16 autocast context (``Bf16Autocast``), or None.
        forward: :func:`forward_points` compiled with ``torch.compile`` (``Compile``), or None.
        tf32: whether TF32 matmuls were switched on (``TF32Matmul``, CUDA only).
    """

    autocast: Callable[[], Any] | None = None
    forward: Callable[..., torch.Tensor] | None = None
    tf32: bool = False

    @classmethod
    def from_specs(cls, specs: dict, device: torch.device | str) -> "Accel":
        device = torch.device(device)
        autocast = None
        if specs.get("Bf16Autocast"):
            autocast = lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)  # noqa: E731
        tf32 = False
        if specs.get("TF32Matmul") and device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            tf32 = True
        comp = specs.get("Compile")
        forward = compiled_forward("inductor" if comp is True else comp) if comp else None
        return cls(autocast, forward, tf32)

    def describe(self) -> str:
        on = [name for name, flag in (("bf16 autocast", self.autocast), ("TF32", self.tf32),
                                      ("torch.compile", self.forward)) if flag]
        return ", ".join(on) if on else "fp32"


_COMPILED: dict[str, Callable[..., torch.Tensor]] = {}


def compiled_forward(backend: str = "inductor") -> Callable[..., torch.Tensor]:
    """:func:`forward_points` through ``torch.compile`` (compiled once per process and backend)."""
    if backend not in _COMPILED:
        _COMPILED[backend] = torch.compile(forward_points, backend=backend, dynamic=True)
    return _COMPILED[backend]
