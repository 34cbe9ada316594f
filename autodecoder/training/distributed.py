"""Data-parallel training across processes, started by ``torchrun``.

``torchrun --nproc_per_node=N train.py -x EXP`` starts N copies of
``train.py``; torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` and
the rendezvous, and :func:`start` joins the process group (NCCL on GPUs,
Gloo on CPUs). Each rank holds the whole training set and the same model;
every batch of ``FramesPerBatch`` frames (the global batch, drawn from the
epoch's shuffled order exactly as in one process) is cut in ``N`` nearly equal
contiguous shares, one per rank. The decoder, the code table and the angle
table are parameters of one module (:class:`Tables`) wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`, so their gradients are
averaged across ranks by DDP's reducer, and every rank then takes the same
optimiser step.

Each rank's loss is its share's absolute error summed and divided by the
*global* batch's point count, times ``N`` (DDP averages over ranks): the
averaged gradient is the gradient of the one-process loss whatever the shares,
also when ``FramesPerBatch`` (or the last batch of an epoch) does not divide
by ``N``; a rank without a frame contributes zeros. The sample draws and the
batch order are keyed by the seed, the epoch, and the sequence and frame
(:mod:`autodecoder.sampling`), never by the rank, so a run gives the same
weights (to float rounding) on any number of ranks, and ``--continue`` resumes
on any number of ranks.

Without torchrun (or with one process) nothing here is used and training is
the one-process loop.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from autodecoder.model.accel import Accel
from autodecoder.model.reference import reference_loss
from autodecoder.training.loss import chunk_error, chunk_slices, loss_clamp
from autodecoder.experiment.errors import UserError

#: How long a collective waits for a silent peer before giving up.
TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class Context:
    """Where this process stands in the run: ``rank`` of ``world`` processes (``local_rank`` on its machine)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """True when several processes train together."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """True on the process that writes checkpoints, logs and progress bars (rank 0)."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise UserError(f"environment variable {name}={value!r}: expected an integer (set by torchrun)") from None


def context_from_environment() -> Context:
    """The :class:`Context` that torchrun's environment variables describe (one process without them)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"environment: RANK={rank} with WORLD_SIZE={world}: expected 0 <= RANK < WORLD_SIZE")
    return Context(rank, world, local)


def start(ctx: Context, device: torch.device) -> torch.device:
    """Join the process group (when ``ctx.active``); return this rank's device.

    On CUDA every rank takes the GPU ``LOCAL_RANK`` and NCCL; on CPUs Gloo.
    """
    if not ctx.active:
        return device
    if device.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise UserError(f"rank {ctx.rank}: LOCAL_RANK {ctx.local_rank} but this machine has "
                            f"{torch.cuda.device_count()} GPU(s); start at most that many processes per node")
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=TIMEOUT)
    return device


def stop(ctx: Context) -> None:
    """Leave the process group (after a normal end of training)."""
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def _device_of_group(device: torch.device) -> torch.device:
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_int(ctx: Context, value: int, device: torch.device) -> int:
    """Rank 0's ``value`` on every rank."""
    if not ctx.active:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=_device_of_group(device))
    dist.broadcast(t, src=0)
    return int(t.item())


def sum_over_ranks(ctx: Context, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums of ``values`` over the ranks (float64)."""
    if not ctx.active:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_device_of_group(device))
    dist.all_reduce(t)
    return t.tolist()


def share(items: torch.Tensor, ctx: Context) -> torch.Tensor:
    """This rank's contiguous share of a global batch's ``items``: sizes differ by at most one frame,
    the first ``len(items) % world`` ranks taking the larger shares (a rank may get none)."""
    return torch.tensor_split(items, ctx.world)[ctx.rank]


def is_peer_failure(error: BaseException) -> bool:
    """True for the errors a collective raises when another rank has died or hung."""
    names = {type(e).__name__ for e in (error, error.__cause__) if e is not None}
    if names & {"DistBackendError", "DistNetworkError", "DistError"}:
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(
        w in text for w in ("gloo", "nccl", "connection", "timed out", "peer", "socket", "broken pipe"))


# --------------------------------------------------------------------------
# the module DDP wraps

class Tables(nn.Module):
    """The decoder with the code table (NumSequences, CodeLength) and angle table (NumSequences, 3)
    as parameters of one module, so that DDP reduces the gradients of all three."""

    def __init__(self, decoder: nn.Module, codes: nn.Parameter, angles: nn.Parameter) -> None:
        super().__init__()
        self.decoder = decoder
        self.codes = codes
        self.angles = angles

    def forward(self, loss: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
        """``loss(decoder, codes, angles, *args)``: DDP sees the parameters used through its own forward."""
        return loss(self.decoder, self.codes, self.angles, *args)


def wrap(tables: Tables, device: torch.device) -> DistributedDataParallel:
    """``tables`` in DDP (built again whenever the set of trainable parameters changes: the angles)."""
    return DistributedDataParallel(tables, device_ids=[device.index] if device.type == "cuda" else None)


def _idle(decoder, codes, angles) -> torch.Tensor:
    """Zero, with every trainable parameter in the graph: the part of a rank without frames."""
    return sum((p * 0.0).sum() for p in (*decoder.parameters(), codes, angles) if p.requires_grad)


def _chunk_terms(decoder, codes, angles, batch, piece, clamp, accel, err_weight, code_weight) -> torch.Tensor:
    """(``err_weight`` × the chunk's absolute error, ``code_weight`` × the code norms of the batch's frames)."""
    err = chunk_error(decoder, codes, angles, batch, piece, clamp, accel)
    code = codes[batch.seq_ids].norm(dim=1).sum() if code_weight else torch.zeros_like(err)
    return torch.stack([err_weight * err, code_weight * code])


def _reference_terms(decoder, codes, angles, batch, clamp, accel, weight, code_weight) -> torch.Tensor:
    with accel.context():
        sdf_loss, code_loss = reference_loss(decoder, codes, angles, batch, clamp, code_weight)
    return weight * torch.stack([sdf_loss.float(), code_loss.float()])


def step(model: DistributedDataParallel, ctx: Context, batch: Any, n_global_frames: int, specs: dict,
         code_weight: float, fast: bool, accel: Accel) -> tuple[float, float]:
    """Forward and backward passes of this rank's share ``batch`` of a global batch of ``n_global_frames``
    frames; on return every rank holds the gradients of the one-process loss. Returns this rank's parts
    (SDF loss, code loss) of the global batch's loss; their sums over the ranks are the batch's losses.

    Fast path: chunk by chunk, DDP's reduction deferred (``no_sync``) until the last chunk's backward.
    """
    n_frames, n_points = batch.sdf.shape if batch is not None else (0, 0)
    world = ctx.world
    clamp = loss_clamp(specs)
    if n_frames == 0:
        model(_idle).backward()
        return 0.0, 0.0
    if not fast:
        out = model(_reference_terms, batch, clamp, accel, world * n_frames / n_global_frames, code_weight)
        out.sum().backward()
        sdf_part, code_part = (out.detach().double() / world).tolist()
        return sdf_part, code_part
    scale = world / (n_global_frames * n_points)
    pieces = chunk_slices(n_frames, n_points, specs["TrainChunkSize"])
    sdf_part = code_part = 0.0
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        # the code term joins the last pass, the one whose backward DDP reduces
        code_scale = world * code_weight / n_global_frames if last else 0.0
        with contextlib.nullcontext() if last else model.no_sync():
            out = model(_chunk_terms, batch, piece, clamp, accel, scale, code_scale)
            out.sum().backward()
        parts = (out.detach().double() / world).tolist()
        sdf_part += parts[0]
        code_part += parts[1]
    return sdf_part, code_part


def wrap_run(run: Any, ctx: Context) -> DistributedDataParallel | None:
    """The DDP wrapper of a :class:`~autodecoder.training.state.Run`'s decoder and tables (None without torchrun),
    built again when the angles start or stop learning (DDP reduces the parameters that need gradients)."""
    if not ctx.active:
        return None
    phase = bool(run.angles.requires_grad)
    if run.ddp_phase != phase:
        run.ddp, run.ddp_phase = wrap(Tables(run.decoder, run.codes, run.angles), run.device), phase
    return run.ddp


def train_share(model: DistributedDataParallel, ctx: Context, data: Any, items: torch.Tensor, epoch: int, run: Any,
                code_weight: float, stop_requested: bool) -> tuple[float, float, bool]:
    """One global batch ``items`` on this rank: its share's gradients (reduced by DDP), the batch's
    (SDF loss, code loss) summed over the ranks, and whether any rank asked to stop (all then stop
    after this very batch)."""
    mine = share(items, ctx)
    batch = data.batch(mine, epoch).to(run.device) if len(mine) else None
    parts = step(model, ctx, batch, len(items), run.specs, code_weight, run.fast, run.accel)
    sdf, code, votes = sum_over_ranks(ctx, [*parts, float(stop_requested)], run.device)
    return sdf, code, votes > 0


def report_peer_failure(ctx: Context, checkpoint: "os.PathLike[str] | str", log: Callable[[str], None]) -> None:
    """Say that this rank lost a peer, and what is left on disk."""
    path = os.fspath(checkpoint)
    kept = (f"{path} (the last finished epoch) is intact: resume with --continue latest, on any number of ranks"
            if os.path.isfile(path) else f"no epoch had finished, so there is no {path} to resume from")
    log(f"error: rank {ctx.rank} of {ctx.world}: lost contact with another rank during training (a process was "
        f"killed or crashed, or its machine went away; torchrun's summary names the rank that failed). "
        f"Nothing of the interrupted epoch was saved; {kept}")
