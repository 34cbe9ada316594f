"""The training loop (SPEC §4), with resume and safe interruption.

One run: read and validate the specs, load and sample the data, build the
decoder and the code and angle tables (or restore them), then for every epoch
shuffle the frames, step through batches and, every ``LogFrequency`` epochs and
at the last, write the original's checkpoint files. ``latest.pth`` (the full
state) is rewritten after every epoch. Ctrl-C finishes the current batch,
writes ``latest.pth`` with the position inside the epoch and returns 130.

Every random draw is keyed by the run's seed (and the epoch), and the
global torch generator (dropout) is saved with the state, so a resumed run
ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from autodecoder import __version__
from autodecoder.model import checkpoints
from autodecoder.training import distributed
from autodecoder.model import forward as fastpath
from autodecoder.experiment import specs as specs_mod
from autodecoder.experiment import workspace as ws
from autodecoder.training.data import Batch, TrainingSet
from autodecoder.experiment.errors import UserError
from autodecoder.model.points import rotation_matrices
from autodecoder.model.decoder import Decoder, assemble_inputs
from autodecoder.io.pictures import plot_loss
from autodecoder.experiment.runtime import pick_device, resolve_seed
from autodecoder.training.sampling import DRAW_ORDER, DRAW_TORCH, rng_for
from autodecoder.training.schedules import schedule

#: Standard deviation of the initial rotation angles with ``OptimizeRot`` (radians).
ANGLE_INIT_STD = math.pi ** 2 / 64
#: With ``OptimizeRot`` the codes learn this many times faster than their schedule.
CODE_LR_FACTOR_WITH_ROT = 10.0


# --------------------------------------------------------------------------
# the formulas, as small pure functions

def learning_rates(specs: dict, epoch: int) -> tuple[float, float, float]:
    """Learning rates (decoder, codes, angles) at the 1-based ``epoch``, the codes' ×10 included."""
    dec, code, ang = (schedule(s)(epoch) for s in specs["LearningRateSchedule"])
    if specs["OptimizeRot"]:
        code *= CODE_LR_FACTOR_WITH_ROT
    return dec, code, ang


def rotation_phase(specs: dict, epoch: int) -> bool:
    """True while the first optimiser (with the angles) steps: ``OptimizeRot`` and epoch ≤ ``OptRotEpoch``."""
    return bool(specs["OptimizeRot"]) and epoch <= specs["OptRotEpoch"]


def code_regularization_weight(specs: dict, epoch: int) -> float:
    """Factor on ``S / n`` (mean code norm per point) in the loss at ``epoch``.

    Without ``OptimizeRot``: ``λ · min(1, epoch/1000)``; with it:
    ``1000 · λ / min(1, epoch/100)`` (at every epoch). 0 when ``CodeRegularization`` is off.
    """
    if not specs["CodeRegularization"]:
        return 0.0
    lam = specs["CodeRegularizationLambda"]
    if specs["OptimizeRot"]:
        return 1000.0 * lam / min(1.0, epoch / 100)
    return lam * min(1.0, epoch / 1000)


def epoch_order(n_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of the items in ``epoch`` (a function of seed and epoch only)."""
    g = torch.Generator().manual_seed(int(rng_for(seed, DRAW_ORDER, epoch).integers(0, 2**62)))
    return torch.randperm(n_items, generator=g)


def init_tables(specs: dict, seed: int) -> tuple[Decoder, torch.Tensor, torch.Tensor]:
    """A freshly initialised decoder, code table (NumSequences, CodeLength) and angle table (NumSequences, 3)."""
    torch.manual_seed(seed)
    decoder = Decoder.from_specs(specs)
    n, length = specs["NumSequences"], specs["CodeLength"]
    codes = torch.randn(n, length) * (specs["CodeInitStdDev"] / math.sqrt(length))
    if specs["OptimizeRot"]:
        angles = torch.randn(n, 3) * ANGLE_INIT_STD
    else:
        angles = torch.zeros(n, 3)
    return decoder, codes, angles


def make_optimizers(decoder: Decoder, codes: torch.nn.Parameter,
                    angles: torch.nn.Parameter) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """(first, second): Adam over (decoder, codes, angles), and Adam over (decoder, codes).

    Learning rates are set per epoch by :func:`set_learning_rates`.
    """
    first = torch.optim.Adam([{"params": decoder.parameters(), "lr": 0.0},
                              {"params": [codes], "lr": 0.0},
                              {"params": [angles], "lr": 0.0}])
    second = torch.optim.Adam([{"params": decoder.parameters(), "lr": 0.0},
                               {"params": [codes], "lr": 0.0}])
    return first, second


def set_learning_rates(optimizers: tuple[torch.optim.Optimizer, ...], rates: tuple[float, float, float]) -> None:
    for opt in optimizers:
        for group, lr in zip(opt.param_groups, rates):
            group["lr"] = lr


def batch_loss(decoder: Decoder, codes: torch.Tensor, angles: torch.Tensor, batch: Batch, specs: dict,
               epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(SDF loss, code-regularisation loss) of one batch.

    The SDF loss is the mean absolute error over all points of the batch
    (both sides clamped to ±``ClampingDistance`` with ``ClampSDFminmax``).
    """
    frame_codes = codes[batch.seq_ids]                    # (B, C)
    rot = rotation_matrices(angles[batch.seq_ids])        # (B, 3, 3)
    xyz = torch.bmm(batch.points, rot)                    # row vectors: xyz @ R
    pred = decoder(assemble_inputs(frame_codes, xyz, batch.times)).reshape(batch.sdf.shape)
    target = batch.sdf
    d = fastpath.loss_clamp(specs)
    if d is not None:
        pred, target = pred.clamp(-d, d), target.clamp(-d, d)
    sdf_loss = (pred - target).abs().mean()
    weight = code_regularization_weight(specs, epoch)
    if weight:
        # S / n: every point carries its frame's code; frames have equal point counts.
        code_loss = weight * frame_codes.norm(dim=1).mean()
    else:
        code_loss = torch.zeros((), device=pred.device)
    return sdf_loss, code_loss


def train_step(decoder: Decoder, codes: torch.Tensor, angles: torch.Tensor, batch: Batch, specs: dict,
               epoch: int, fast: bool = True, accel: "fastpath.Accel | None" = None) -> tuple[float, float]:
    """Accumulate the gradients of one batch's loss; return (SDF loss, code loss) as numbers.

    ``fast``: chunked forward/backward on split layers (:func:`autodecoder.fastpath.loss_and_backward`);
    else the plain path, :func:`batch_loss` and one backward pass over the whole batch.
    The two give the same losses and gradients up to float rounding.
    """
    accel = accel or fastpath.Accel()
    if fast:
        return fastpath.loss_and_backward(decoder, codes, angles, batch, specs,
                                          code_regularization_weight(specs, epoch),
                                          chunk=specs.get("TrainChunkSize", fastpath.TRAIN_CHUNK),
                                          autocast=accel.autocast, forward=accel.forward)
    if accel.autocast is not None:
        with accel.autocast():
            sdf_loss, code_loss = batch_loss(decoder, codes, angles, batch, specs, epoch)
        sdf_loss = sdf_loss.float()
    else:
        sdf_loss, code_loss = batch_loss(decoder, codes, angles, batch, specs, epoch)
    (sdf_loss + code_loss).backward()
    return sdf_loss.item(), code_loss.item()


# --------------------------------------------------------------------------

class _StopFlag:
    """Ctrl-C sets a flag (the batch in progress finishes); a second Ctrl-C interrupts at once.

    ``several_ranks``: under torchrun, whose agent passes a Ctrl-C on to every
    rank (which the terminal has already signalled) and stops a run with
    SIGTERM, both signals only set the flag: the ranks agree on the batch to
    stop after and rank 0 saves (torchrun kills what is still running 30 s later).
    """

    def __init__(self, several_ranks: bool = False, speak: bool = True) -> None:
        self.requested = False
        self.several_ranks = several_ranks
        self.speak = speak
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM) if self.several_ranks else (signal.SIGINT,):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            if self.several_ranks:
                return
            raise KeyboardInterrupt
        self.requested = True
        if self.speak:
            tqdm.write("interrupt: finishing the current batch, then saving latest.pth"
                       + ("" if self.several_ranks else " (Ctrl-C again to abort)"))

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def train(exp: str | Path, device: str | None = None, seed: int | None = None, resume: str | None = None,
          progress: bool = True, log: Callable[[str], None] = print) -> int:
    """Train the experiment in ``exp``; returns the exit code (0 done, 130 interrupted, 1 a rank was lost).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank runs this function and
    trains its share of each batch with DDP (:mod:`autodecoder.distributed`);
    only rank 0 writes files, logs and shows progress bars.

    Args:
        exp: experiment folder holding ``specs.json``.
        device: "cpu", "cuda", … (default: cuda if present).
        seed: seed of the run (default: drawn at random and recorded;
            when resuming ``latest``, the checkpoint's seed).
        resume: ``None``, ``"latest"`` or an epoch number (as a string or int).
        progress: show progress bars.
        log: where messages go.
    """
    exp = Path(exp)
    ctx = distributed.context_from_environment()
    if not ctx.main:
        progress, log = False, (lambda message: None)
    specs = specs_mod.load(exp, specs_mod.TRAIN)
    dev = distributed.start(ctx, pick_device(device))
    try:
        code = _train(exp, specs, ctx, dev, seed, resume, progress, log)
    except Exception as e:
        if ctx.active and distributed.is_peer_failure(e):
            distributed.report_peer_failure(ctx, ws.latest_file(exp),
                                            lambda m: print(m, file=sys.stderr, flush=True))
            return 1  # no destroy_process_group: it can wait for the dead peer
        raise
    distributed.stop(ctx)
    return code


def _train(exp: Path, specs: dict, ctx: distributed.Context, dev: torch.device, seed: int | None,
           resume: str | None, progress: bool, log: Callable[[str], None]) -> int:
    n_epochs = specs["NumEpochs"]

    state: dict[str, Any] | None = None
    restart_note = None
    if resume is not None:
        epoch_arg = checkpoints.parse_epoch(resume)
        if epoch_arg is None:
            raise UserError("--continue: expected \"latest\" or an epoch number")
        if epoch_arg != ws.LATEST and ws.latest_file(exp).is_file():
            st = checkpoints.load_latest(exp)
            if st["completed_epoch"] == epoch_arg and st["next_batch"] == 0:
                epoch_arg = ws.LATEST  # the full state of that very epoch exists
        if epoch_arg == ws.LATEST:
            state = checkpoints.load_latest(exp)
            if seed is not None and seed != state["seed"]:
                raise UserError(f"--seed {seed}: differs from the seed {state['seed']} of the run being resumed "
                                f"({ws.latest_file(exp)}); omit --seed to resume it")
            seed = state["seed"]
        else:
            trained = checkpoints.load_trained(exp, epoch_arg, specs["CodeLength"])
            restart_note = (f"note: {trained.source} is a checkpoint without optimiser state; "
                            f"the optimisers restart from zero moments at epoch {epoch_arg + 1}")
    seed = distributed.broadcast_int(ctx, resolve_seed(seed), dev)  # a drawn seed is rank 0's

    source = ws.data_folder(specs, exp)
    if specs["Threads"] is not None:
        torch.set_num_threads(specs["Threads"])
    # FastPath: samples as grid indices (the plain path holds the original's float32 x, y, z, sdf rows)
    data = TrainingSet(source, specs["UseHDF5"], specs["NumSequences"], specs["TrainSampleFraction"],
                       specs["OnTheFlySampling"], seed, progress=progress,
                       layout="compact" if specs["FastPath"] else "original", fresh=specs["FreshSampling"],
                       pool_factor=specs["SamplePoolFactor"], value_dtype=specs["SampleValueDtype"])

    decoder, codes0, angles0 = init_tables(specs, seed)
    start_epoch, start_batch = 1, 0
    history: list[list[float]] = []
    sums = [0.0, 0.0, 0.0]  # sdf loss sum, code loss sum, seconds, of the epoch in progress
    if state is not None:
        checkpoints.load_into(decoder, state["decoder"], ws.latest_file(exp))
        codes0, angles0 = state["codes"].clone(), state["angles"].clone()
        start_epoch, start_batch = state["next_epoch"], state["next_batch"]
        history = [list(h) for h in state["history"]]
        sums = list(state["epoch_sums"])
    elif resume is not None:
        checkpoints.load_into(decoder, trained.state, trained.source)
        if trained.codes.shape != tuple(codes0.shape):
            raise UserError(f"{ws.codes_file(exp, epoch_arg)}: code table of shape {trained.codes.shape} but the "
                            f"specs ask for {tuple(codes0.shape)} (NumSequences, CodeLength)")
        codes0, angles0 = torch.from_numpy(trained.codes), torch.from_numpy(trained.angles)
        start_epoch = epoch_arg + 1

    decoder.to(dev).train()
    accel = fastpath.Accel.from_specs(specs, dev)
    use_fast = specs["FastPath"] and fastpath.fast_path_applies(decoder, training=True)
    if specs["FastPath"] and not use_fast:
        log("note: latent_dropout / hidden-layer dropout: the fast path does not apply, training on the plain path")
    codes = torch.nn.Parameter(codes0.to(dev))
    angles = torch.nn.Parameter(angles0.to(dev))
    opt_first, opt_second = make_optimizers(decoder, codes, angles)
    if state is not None:
        opt_first.load_state_dict(state["opt_first"])
        opt_second.load_state_dict(state["opt_second"])
        torch.set_rng_state(state["rng_cpu"])
        if dev.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], dev)
    else:
        torch.manual_seed(int(rng_for(seed, DRAW_TORCH).integers(0, 2**62)))  # dropout stream of this run

    start = time.time()
    log_path = ws.log_file(exp, start)
    if ctx.main:
        ws.resolved_specs_file(exp).parent.mkdir(parents=True, exist_ok=True)
        specs_mod.save(specs, ws.resolved_specs_file(exp))
        with open(log_path, "a") as fh:
            fh.write((exp / "specs.json").read_text().rstrip() + "\n")
            fh.write(f"# autodecoder {__version__}, seed {seed}, device {dev}"
                     + (f", {ctx.world} ranks" if ctx.active else "")
                     + (f", resumed at epoch {start_epoch} batch {start_batch}" if resume else "") + "\n")
    if restart_note:
        log(restart_note)
    if start_epoch > n_epochs:
        log(f"nothing to do: epoch {start_epoch - 1} of {n_epochs} already done (raise \"NumEpochs\" to go on)")
        return 0

    n_items = len(data)
    fpb = specs["FramesPerBatch"]
    batches_per_epoch = math.ceil(n_items / fpb)
    total = (n_epochs - start_epoch + 1) * batches_per_epoch - start_batch
    log(f"training {exp} on {dev}" + (f" × {ctx.world} ranks (DDP)" if ctx.active else "")
        + f": {n_items} frames of {data.n_points} points, {batches_per_epoch} batches "
        f"per epoch, epochs {start_epoch}…{n_epochs}, seed {seed}, {'fast' if use_fast else 'plain'} path "
        f"({accel.describe()}, {torch.get_num_threads()} threads)")
    if ctx.active and fpb % ctx.world:
        log(f"note: FramesPerBatch {fpb} does not divide by {ctx.world} ranks: shares of "
            f"{fpb // ctx.world + 1} and {fpb // ctx.world} frames (the gradient is the same; the smaller "
            f"shares wait for the larger)")
    model = None  # DDP wrapper of (decoder, codes, angles); built per rotation phase
    model_phase: bool | None = None

    def snapshot(next_epoch: int, next_batch: int, completed: int) -> dict[str, Any]:
        return {
            "version": __version__, "seed": seed, "specs": specs,
            "next_epoch": next_epoch, "next_batch": next_batch, "completed_epoch": completed,
            "epoch_sums": list(sums), "history": history,
            "decoder": {k: v.detach().cpu() for k, v in decoder.state_dict().items()},
            "codes": codes.detach().cpu().clone(), "angles": angles.detach().cpu().clone(),
            "opt_first": opt_first.state_dict(), "opt_second": opt_second.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
        }

    bar = tqdm(total=total, unit="batch", disable=not progress, dynamic_ncols=True)
    with _StopFlag(several_ranks=ctx.active, speak=ctx.main) as stop:
        for epoch in range(start_epoch, n_epochs + 1):
            rates = learning_rates(specs, epoch)
            set_learning_rates((opt_first, opt_second), rates)
            rot_phase = rotation_phase(specs, epoch)
            optimizer = opt_first if rot_phase else opt_second
            angles.requires_grad_(rot_phase)
            if ctx.active and model_phase != rot_phase:  # DDP reduces the parameters that need gradients
                model = distributed.wrap(distributed.Tables(decoder, codes, angles), dev)
                model_phase = rot_phase
            order = epoch_order(n_items, seed, epoch)
            first_batch = start_batch if epoch == start_epoch else 0
            if first_batch == 0:
                sums = [0.0, 0.0, 0.0]
            bar.set_description(f"epoch {epoch}/{n_epochs}")
            t0 = time.time()
            for b in range(first_batch, batches_per_epoch):
                items = order[b * fpb:(b + 1) * fpb]
                decoder.zero_grad(set_to_none=True)
                codes.grad = None
                angles.grad = None
                if ctx.active:
                    mine = distributed.share(items, ctx)
                    batch = data.batch(mine, epoch).to(dev) if len(mine) else None
                    parts = distributed.step(model, ctx, batch, len(items), specs, epoch,
                                             code_regularization_weight(specs, epoch), use_fast, accel)
                    sdf_value, code_value, votes = distributed.sum_over_ranks(ctx, [*parts, float(stop.requested)],
                                                                              dev)
                    stopping = votes > 0  # agreed: every rank stops after the same batch
                else:
                    batch = data.batch(items, epoch).to(dev)
                    sdf_value, code_value = train_step(decoder, codes, angles, batch, specs, epoch, use_fast,
                                                       accel)
                    stopping = stop.requested
                if specs["GradientClipNorm"] is not None:
                    torch.nn.utils.clip_grad_norm_(decoder.parameters(), specs["GradientClipNorm"])
                optimizer.step()
                sums[0] += sdf_value
                sums[1] += code_value
                bar.update(1)
                bar.set_postfix(loss=f"{sdf_value:.5f}")
                if stopping and b + 1 < batches_per_epoch:
                    sums[2] += time.time() - t0
                    if ctx.main:
                        checkpoints.save_latest(exp, snapshot(epoch, b + 1, epoch - 1))
                    bar.close()
                    log(f"interrupted in epoch {epoch} after batch {b + 1}/{batches_per_epoch}: saved "
                        f"{ws.latest_file(exp)}; resume with --continue latest")
                    return 130
            sums[2] += time.time() - t0
            sdf_mean, code_mean = sums[0] / batches_per_epoch, sums[1] / batches_per_epoch
            history.append([epoch, sdf_mean, code_mean, sums[2]])
            line = f"epoch {epoch} / {n_epochs}, SDF loss {sdf_mean:.5f}, code loss {code_mean:.5f}, time {sums[2]:.2f}"
            if ctx.main:
                with open(log_path, "a") as fh:
                    fh.write(line + "\n")
            if progress:
                tqdm.write(line)
            else:
                log(line)
            if ctx.main and (epoch % specs["LogFrequency"] == 0 or epoch == n_epochs):
                checkpoints.save_epoch(exp, epoch, decoder, codes, angles)
                plot_loss(history, ws.loss_plot_file(exp), title=f"{exp.name}: loss per epoch")
            sums = [0.0, 0.0, 0.0]
            if ctx.main:
                checkpoints.save_latest(exp, snapshot(epoch + 1, 0, epoch))
            if stopping if ctx.active else stop.requested:
                bar.close()
                log(f"interrupted after epoch {epoch}: saved {ws.latest_file(exp)}; resume with --continue latest")
                return 130
    bar.close()
    log(f"done: {n_epochs} epochs in {time.time() - start:.1f} s; checkpoints in {exp / ws.MODEL_DIR}")
    return 0
