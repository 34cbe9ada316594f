"""The training loop (docs/method.md §4): restore or initialise, run the epochs, checkpoint.

:func:`train` reads it top to bottom: the run's start (:func:`autodecoder.training.state.find_start`),
the data (:class:`autodecoder.training.data.TrainingSet`), the run in memory
(:class:`autodecoder.training.state.Run`), then per epoch :func:`run_epoch` (shuffled batches, one
optimiser step each) and :func:`end_epoch` (log line, the original's checkpoint files every
``LogFrequency`` epochs and at the last, ``latest.pth`` after every epoch). Ctrl-C or SIGTERM finish
the batch in progress, save ``latest.pth`` with the position inside the epoch and return 130.
Under ``torchrun`` every rank runs this loop on its share of each batch
(:mod:`autodecoder.training.distributed`); only rank 0 writes files, logs and shows progress bars.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Iterator

import torch
from tqdm import tqdm

from autodecoder import __version__
from autodecoder.experiment import specs as specs_mod
from autodecoder.experiment import workspace as ws
from autodecoder.experiment.guards import (EXIT_STOPPED, check_memory, clean_stale_temporaries,
                                           ensure_writable_dir, hold_lock, stop_requests)
from autodecoder.experiment.runtime import pick_device, resolve_seed
from autodecoder.io.pictures import plot_loss
from autodecoder.model import checkpoints
from autodecoder.training import distributed
from autodecoder.model.footprint import training_bytes
from autodecoder.training.data import TrainingSet, data_extent
from autodecoder.training.loss import train_step
from autodecoder.training.schedules import code_regularization_weight, epoch_order
from autodecoder.training.state import Log, Run, find_start, quiet

STOP_MESSAGE = "interrupt: finishing the current batch, then saving latest.pth"
#: The flag that removes the lock of a run that died on another machine.
BREAK_LOCK_FLAG = "--break-lock"


def train(exp: str | Path, device: str | None = None, seed: int | None = None, resume: str | None = None,
          progress: bool = True, log: Log = print, accept_changed_specs: bool = False,
          ignore_memory: bool = False) -> int:
    """Train the experiment in ``exp``; returns the exit code (0 done, 130 interrupted, 1 a rank was lost).

    Args:
        exp: experiment folder holding ``specs.json``.
        device: "cpu", "cuda", … (default: cuda if present).
        seed: seed of the run (default: drawn at random and recorded; when resuming ``latest``, the checkpoint's).
        resume: ``None``, ``"latest"`` or an epoch number (as a string or int).
        progress: show progress bars.
        log: where messages go.
        accept_changed_specs: resume although keys that affect training changed (see
            :func:`autodecoder.training.state.find_start`).
        ignore_memory: start although the memory estimate exceeds what the process may use.

    The experiment is locked while it trains (``<exp>/.lock``, :func:`autodecoder.experiment.guards.hold_lock`):
    a second run on it is refused.
    """
    exp = Path(exp)
    ctx = distributed.context_from_environment()
    if not ctx.main:
        progress, log = False, quiet
    specs = specs_mod.load(exp, specs_mod.TRAIN)
    dev = distributed.start(ctx, pick_device(device))
    options = (accept_changed_specs, ignore_memory)
    try:
        with _experiment_lock(exp, ctx, log):
            code = _train(exp, specs, ctx, dev, seed, resume, progress, log, options)
    except Exception as e:
        if ctx.active and distributed.is_peer_failure(e):
            distributed.report_peer_failure(ctx, ws.latest_file(exp), lambda m: print(m, file=sys.stderr, flush=True))
            return 1  # no destroy_process_group: it can wait for the dead peer
        raise
    distributed.stop(ctx)
    return code


@contextlib.contextmanager
def _experiment_lock(exp: Path, ctx: distributed.Context, log: Log) -> Iterator[None]:
    """Rank 0 locks the experiment (the other ranks write nothing), after checking that its folders
    can be written, and removes the temporaries that killed runs left."""
    if not ctx.main:
        yield
        return
    for sub, what in ((ws.MODEL_DIR, "checkpoint"), (ws.CODES_DIR, "code table")):
        ensure_writable_dir(exp / sub, what)
    with hold_lock(exp, "the experiment", log, break_hint=f"pass {BREAK_LOCK_FLAG}"):
        for folder in (exp, exp / ws.MODEL_DIR, exp / ws.CODES_DIR):
            clean_stale_temporaries(folder, log)
        yield


def _train(exp: Path, specs: dict, ctx: distributed.Context, dev: torch.device, seed: int | None,
           resume: str | None, progress: bool, log: Log, options: tuple[bool, bool]) -> int:
    accept_changes, ignore_memory = options
    start = find_start(exp, specs, resume, seed, accept_changes, log)
    seed = distributed.broadcast_int(ctx, resolve_seed(start.seed), dev)  # a drawn seed is rank 0's
    if specs["Threads"] is not None:
        torch.set_num_threads(specs["Threads"])
    folder = ws.data_folder(specs, exp)
    check_memory(training_bytes(specs, *data_extent(folder, specs["UseHDF5"]), torch.get_num_threads()), dev,
                 f"training {exp}", "lower \"NetworkSpecs\".dims, \"FramesPerBatch\", \"TrainSampleFraction\" "
                 "or \"TrainChunkSize\"", ignore_memory, log)
    data = TrainingSet.from_specs(folder, specs, seed, progress=progress)
    run = Run.build(exp, specs, seed, dev, start, data.files)
    if specs["FastPath"] and not run.fast:
        log("note: latent_dropout / hidden-layer dropout: the fast path does not apply, training on the plain path")
    log_path = _begin_log(exp, run, ctx, resumed=resume is not None)
    if start.note:
        log(start.note)
    n_epochs = specs["NumEpochs"]
    if run.next_epoch > n_epochs:
        log(f"nothing to do: epoch {run.next_epoch - 1} of {n_epochs} already done (raise \"NumEpochs\" to go on)")
        return 0
    batches = math.ceil(len(data) / specs["FramesPerBatch"])
    log(_header(exp, run, ctx, data, batches))
    t_start = time.time()
    bar = tqdm(total=(n_epochs - run.next_epoch + 1) * batches - run.next_batch, unit="batch",
               disable=not progress, dynamic_ncols=True)
    with stop_requests(STOP_MESSAGE, several_ranks=ctx.active, speak=ctx.main) as stop, bar:
        for epoch in range(run.next_epoch, n_epochs + 1):
            done = run_epoch(run, data, epoch, ctx, stop, bar)
            if done < batches:
                _save_latest(exp, run, ctx, epoch, done, epoch - 1)
                log(f"interrupted in epoch {epoch} after batch {done}/{batches}: saved {ws.latest_file(exp)}; "
                    "resume with --continue latest")
                return EXIT_STOPPED
            end_epoch(exp, run, ctx, epoch, batches, log_path, log if not progress else tqdm.write)
            if run.stopping or (not ctx.active and stop.requested):
                log(f"interrupted after epoch {epoch}: saved {ws.latest_file(exp)}; resume with --continue latest")
                return EXIT_STOPPED
    log(f"done: {n_epochs} epochs in {time.time() - t_start:.1f} s; checkpoints in {exp / ws.MODEL_DIR}")
    return 0


def run_epoch(run: Run, data: TrainingSet, epoch: int, ctx: distributed.Context, stop, bar: tqdm) -> int:
    """The batches of ``epoch`` from ``run.next_batch`` on; returns the number of batches done (all of
    them unless a stop was requested, which is honoured after the batch in progress)."""
    fpb = run.specs["FramesPerBatch"]
    batches = math.ceil(len(data) / fpb)
    first = run.next_batch if epoch == run.next_epoch else 0
    if first == 0:
        run.sums = [0.0, 0.0, 0.0]
    optimizer = run.begin_epoch(epoch)
    model = distributed.wrap_run(run, ctx)  # DDP reduces the parameters that need gradients
    order = epoch_order(len(data), run.seed, epoch)
    weight = code_regularization_weight(run.specs, epoch)
    bar.set_description(f"epoch {epoch}/{run.specs['NumEpochs']}")
    t0 = time.time()
    run.stopping = False
    for b in range(first, batches):
        items = order[b * fpb:(b + 1) * fpb]
        run.zero_grad()
        if ctx.active:
            sdf, code, run.stopping = distributed.train_share(model, ctx, data, items, epoch, run, weight,
                                                               stop.requested)
        else:
            sdf, code = train_step(run.decoder, run.codes, run.angles, data.batch(items, epoch).to(run.device),
                                   run.specs, weight, run.fast, run.accel)
            run.stopping = stop.requested
        if run.specs["GradientClipNorm"] is not None:
            torch.nn.utils.clip_grad_norm_(run.decoder.parameters(), run.specs["GradientClipNorm"])
        optimizer.step()
        run.sums[0] += sdf
        run.sums[1] += code
        bar.update(1)
        bar.set_postfix(loss=f"{sdf:.5f}")
        if run.stopping and b + 1 < batches:
            run.sums[2] += time.time() - t0
            return b + 1
    run.sums[2] += time.time() - t0
    return batches


def end_epoch(exp: Path, run: Run, ctx: distributed.Context, epoch: int, batches: int, log_path: Path,
              say: Log) -> None:
    """The epoch's log line, the original's checkpoint files when due, and ``latest.pth``."""
    sdf, code, seconds = run.sums[0] / batches, run.sums[1] / batches, run.sums[2]
    run.history.append([epoch, sdf, code, seconds])
    n_epochs = run.specs["NumEpochs"]
    line = f"epoch {epoch} / {n_epochs}, SDF loss {sdf:.5f}, code loss {code:.5f}, time {seconds:.2f}"
    say(line)
    if ctx.main:
        with open(log_path, "a") as fh:
            fh.write(line + "\n")
        if epoch % run.specs["LogFrequency"] == 0 or epoch == n_epochs:
            checkpoints.save_epoch(exp, epoch, run.decoder, run.codes, run.angles)
            plot_loss(run.history, ws.loss_plot_file(exp), title=f"{exp.name}: loss per epoch")
    run.sums = [0.0, 0.0, 0.0]
    _save_latest(exp, run, ctx, epoch + 1, 0, epoch)


def _save_latest(exp: Path, run: Run, ctx: distributed.Context, next_epoch: int, next_batch: int,
                 completed: int) -> None:
    if ctx.main:
        checkpoints.save_latest(exp, run.snapshot(next_epoch, next_batch, completed))


def _begin_log(exp: Path, run: Run, ctx: distributed.Context, resumed: bool) -> Path:
    """Write the resolved specs and start the original's text log (specs text, then a header line)."""
    path = ws.log_file(exp, time.time())
    if ctx.main:
        specs_mod.save(run.specs, ws.resolved_specs_file(exp))
        with open(path, "a") as fh:
            fh.write((exp / "specs.json").read_text().rstrip() + "\n")
            fh.write(f"# autodecoder {__version__}, seed {run.seed}, device {run.device}"
                     + (f", {ctx.world} ranks" if ctx.active else "")
                     + (f", resumed at epoch {run.next_epoch} batch {run.next_batch}" if resumed else "") + "\n")
    return path


def _header(exp: Path, run: Run, ctx: distributed.Context, data: TrainingSet, batches: int) -> str:
    fpb = run.specs["FramesPerBatch"]
    text = (f"training {exp} on {run.device}" + (f" × {ctx.world} ranks (DDP)" if ctx.active else "")
            + f": {len(data)} frames of {data.n_points} points, {batches} batches per epoch, epochs "
            f"{run.next_epoch}…{run.specs['NumEpochs']}, seed {run.seed}, {'fast' if run.fast else 'plain'} path "
            f"({run.accel.describe()}, {torch.get_num_threads()} threads)")
    if ctx.active and fpb % ctx.world:
        text += (f"\nnote: FramesPerBatch {fpb} does not divide by {ctx.world} ranks: shares of "
                 f"{fpb // ctx.world + 1} and {fpb // ctx.world} frames (the gradient is the same; the smaller "
                 "shares wait for the larger)")
    return text
