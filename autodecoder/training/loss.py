"""The training loss (docs/method.md §4), computed chunk by chunk: the one loss core.

The SDF loss of a batch is the mean absolute error over all its points (both sides clamped to
±``ClampingDistance`` with ``ClampSDFminmax``); the code loss is the code-regularisation weight of
the epoch times the mean code norm per point. Because the SDF loss is a sum over points, forward and
backward passes go chunk by chunk (:func:`chunk_slices`) and the gradients accumulate: activation
memory is bounded by the chunk, not by the batch. :func:`chunk_error` is the core that one process
(:func:`loss_and_backward`, chunks shared by worker threads) and several processes
(:mod:`autodecoder.training.distributed`) both call. :func:`train_step` runs it, or the plain
reference (:func:`autodecoder.model.reference.reference_loss`) where the fast path does not apply.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import torch

from autodecoder.model.accel import Accel, single_thread_ops, worker_threads
from autodecoder.model.decoder import Decoder
from autodecoder.model.forward import forward_points, frame_biases, split_layers
from autodecoder.model.points import rotated_points, rotation_matrices
from autodecoder.model.reference import reference_loss

#: The number of chunks of a batch is rounded up to a multiple of this, so that worker threads share the work.
CHUNK_GRAIN = 4


def loss_clamp(specs: dict) -> float | None:
    """The ``ClampingDistance`` both sides of the loss are clamped to, or None (``ClampSDFminmax`` off)."""
    return specs["ClampingDistance"] if specs["ClampSDFminmax"] else None


def chunk_slices(n_frames: int, n_points: int, chunk: int) -> list[tuple[slice, slice]]:
    """(frames, points) slices covering a (n_frames, n_points) batch, at most about ``chunk`` points each.

    Whole frames are grouped when they are smaller than a chunk; larger frames are cut in equal
    pieces. The count is a multiple of :data:`CHUNK_GRAIN` where possible, and depends only on the
    batch shape and ``chunk``.
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


def chunk_error(decoder: Decoder, codes: torch.Tensor, angles: torch.Tensor, batch: Any,
                piece: tuple[slice, slice], clamp: float | None, accel: Accel | None = None) -> torch.Tensor:
    """Sum of |prediction − target| over the (frames, points) slice ``piece`` of ``batch`` (a scalar tensor).

    ``batch`` holds grid ``index`` (B, n) with ``grid_shape`` (or ``points`` (B, n, 3)), ``sdf`` (B, n),
    ``times`` (B,) and ``seq_ids`` (B,). Both sides are clamped to ±``clamp`` when it is given.
    """
    fs, ps = piece
    s = batch.seq_ids[fs]
    rot = rotation_matrices(angles[s])  # (k, 3, 3)
    if batch.index is not None:
        xyz = rotated_points(batch.index[fs, ps].long(), batch.grid_shape, rot)
    else:
        xyz = torch.bmm(batch.points[fs, ps], rot)
    target = batch.sdf[fs, ps].float()
    accel = accel or Accel()
    with accel.context():
        layers = split_layers(decoder)
        pred = (accel.forward or forward_points)(decoder, layers, frame_biases(layers, codes[s], batch.times[fs]), xyz)
    pred = pred.float()
    if clamp is not None:
        pred, target = pred.clamp(-clamp, clamp), target.clamp(-clamp, clamp)
    return (pred - target).abs().sum()


def _params(decoder: Decoder, codes: torch.Tensor, angles: torch.Tensor) -> list[torch.Tensor]:
    params = [p for p in decoder.parameters() if p.requires_grad]
    if codes.requires_grad:
        params.append(codes)
    if angles.requires_grad:
        params.append(angles)
    return params


def loss_and_backward(decoder: Decoder, codes: torch.Tensor, angles: torch.Tensor, batch: Any, clamp: float | None,
                      code_weight: float, chunk: int, accel: Accel | None = None,
                      threads: int | None = None) -> tuple[float, float]:
    """Accumulate into ``.grad`` the gradients of one batch's loss, chunk by chunk; return (SDF loss, code loss).

    The same loss and gradients as :func:`autodecoder.model.reference.reference_loss` up to float
    rounding. ``threads``: worker threads on the CPU, each running whole chunks on one intra-op thread
    (default torch's thread count; 1 on a GPU or with a compiled forward). Each chunk's gradients are
    computed separately and summed in chunk order, so the result does not depend on ``threads``.
    """
    n_frames, n_points = batch.sdf.shape
    total = n_frames * n_points
    device = batch.sdf.device
    threads = 1 if accel is not None and accel.forward else worker_threads(device, threads)
    params = _params(decoder, codes, angles)
    acc: list[torch.Tensor | None] = [None] * len(params)

    def work(piece: tuple[slice, slice]) -> tuple[float, tuple[torch.Tensor | None, ...]]:
        part = chunk_error(decoder, codes, angles, batch, piece, clamp, accel)
        return part.item(), torch.autograd.grad(part / total, params, allow_unused=True)

    def gather(results: Iterator[tuple[float, tuple[torch.Tensor | None, ...]]]) -> float:
        sdf_sum = 0.0
        for part, grads in results:  # in chunk order, whatever the threads
            sdf_sum += part
            for i, g in enumerate(grads):
                if g is not None:
                    acc[i] = g if acc[i] is None else acc[i].add_(g)
        return sdf_sum

    pieces = chunk_slices(n_frames, n_points, chunk)
    if threads > 1 and len(pieces) > 1 and device.type == "cpu":
        with single_thread_ops(), ThreadPoolExecutor(min(threads, len(pieces))) as pool:
            sdf_sum = gather(pool.map(work, pieces))
    else:
        sdf_sum = gather(map(work, pieces))
    code_loss = 0.0
    if code_weight and codes.requires_grad:
        cl = code_weight * codes[batch.seq_ids].norm(dim=1).mean()
        i = next(k for k, p in enumerate(params) if p is codes)
        g = torch.autograd.grad(cl, codes)[0]
        acc[i] = g if acc[i] is None else acc[i].add_(g)
        code_loss = cl.item()
    for p, g in zip(params, acc):
        if g is not None:
            p.grad = g if p.grad is None else p.grad + g
    return sdf_sum / total, code_loss


@torch.no_grad()
def mean_error(decoder: Decoder, codes: torch.Tensor, angles: torch.Tensor, batch: Any, clamp: float | None,
               chunk: int = 1 << 16) -> float:
    """The SDF loss of ``batch`` (mean absolute error over all its points), without gradients."""
    n_frames, n_points = batch.sdf.shape
    total = sum(chunk_error(decoder, codes, angles, batch, piece, clamp).item()
                for piece in chunk_slices(n_frames, n_points, chunk))
    return total / (n_frames * n_points)


def train_step(decoder: Decoder, codes: torch.Tensor, angles: torch.Tensor, batch: Any, specs: dict,
               code_weight: float, fast: bool = True, accel: Accel | None = None) -> tuple[float, float]:
    """Accumulate the gradients of one batch's loss; return (SDF loss, code loss) as numbers.

    ``fast``: :func:`loss_and_backward` (chunks of ``TrainChunkSize`` points); else the plain
    reference, one backward pass over the whole batch. Both give the same losses and gradients up
    to float rounding.
    """
    clamp = loss_clamp(specs)
    if fast:
        return loss_and_backward(decoder, codes, angles, batch, clamp, code_weight, specs["TrainChunkSize"], accel)
    with (accel or Accel()).context():
        sdf_loss, code_loss = reference_loss(decoder, codes, angles, batch, clamp, code_weight)
    sdf_loss = sdf_loss.float()
    (sdf_loss + code_loss).backward()
    return sdf_loss.item(), code_loss.item()
