"""What a training run holds, how it starts, and how it is saved (docs/method.md §4).

* :func:`find_start`: a new run, ``--continue latest`` (the full state of ``latest.pth``) or
  ``--continue N`` (the original's checkpoint of epoch N: weights and tables, no optimiser state).
* :class:`Run`: the decoder, the code and angle tables, both Adam optimisers, the loss history and
  the position (epoch, batch) — built fresh from the seed or restored, and turned back into the
  dictionary that ``latest.pth`` stores (:meth:`Run.snapshot`).

Every random draw is keyed by the run's seed (and the epoch), and the global torch generator
(dropout) is saved with the state, so a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from autodecoder import __version__
from autodecoder.experiment import workspace as ws
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.specs import changed_keys
from autodecoder.model import checkpoints
from autodecoder.model.accel import Accel
from autodecoder.model.decoder import Decoder
from autodecoder.model.forward import fast_path_applies
from autodecoder.training import alignment
from autodecoder.training.sampling import DRAW_TORCH, rng_for
from autodecoder.training.schedules import learning_rates, rotation_phase

#: The flag of train.py that resumes with changed specs.
ACCEPT_FLAG = "--accept-changed-specs"
#: Standard deviation of the initial rotation angles with ``OptimizeRot`` (radians).
ANGLE_INIT_STD = math.pi ** 2 / 64


@dataclass
class Start:
    """Where a run starts: ``state`` (``latest.pth``), or ``checkpoint`` of ``epoch`` (original layout), or neither."""

    seed: int | None
    state: dict[str, Any] | None = None
    checkpoint: checkpoints.Checkpoint | None = None
    epoch: int | None = None
    note: str | None = None


def find_start(exp: Path, specs: dict, resume: str | int | None, seed: int | None,
               accept_changes: bool = False, log: Callable[[str], None] = print) -> Start:
    """The start of a run for ``--continue resume`` (None, "latest" or an epoch) and ``--seed seed``.

    Resuming ``latest.pth`` compares the specs saved in it with ``specs``: a changed key that affects
    training (:func:`autodecoder.experiment.specs.changed_keys`) is refused, naming each key with its
    old and new value, unless ``accept_changes``; then the run goes on with the new values, and a state
    saved in the middle of an epoch restarts that epoch from its first batch.
    """
    if resume is None:
        return Start(seed)
    epoch = checkpoints.parse_epoch(resume)
    if epoch is None:
        raise UserError("--continue: expected \"latest\" or an epoch number")
    if epoch != ws.LATEST and ws.latest_file(exp).is_file():
        st = checkpoints.load_latest(exp)
        if st["completed_epoch"] == epoch and st["next_batch"] == 0:
            epoch = ws.LATEST  # the full state of that very epoch exists
    if epoch == ws.LATEST:
        state = checkpoints.load_latest(exp)
        if seed is not None and seed != state["seed"]:
            raise UserError(f"--seed {seed}: differs from the seed {state['seed']} of the run being resumed "
                            f"({ws.latest_file(exp)}); omit --seed to resume it")
        _compare_specs(exp, state, specs, accept_changes, log)
        return Start(state["seed"], state=state)
    ck = checkpoints.load_trained(exp, epoch, specs["CodeLength"])
    note = (f"note: {ck.source} is a checkpoint without optimiser state; "
            f"the optimisers restart from zero moments at epoch {epoch + 1}")
    return Start(seed, checkpoint=ck, epoch=epoch, note=note)


def _compare_specs(exp: Path, state: dict[str, Any], specs: dict, accept: bool, log: Callable[[str], None]) -> None:
    changes = changed_keys(state["specs"], specs)
    if not changes:
        return
    listed = "; ".join(f"\"{k}\" {json.dumps(a)} → {json.dumps(b)}" for k, a, b in changes)
    if not accept:
        raise UserError(f"{exp / 'specs.json'}: changed since the run being resumed was started ({listed}); "
                        f"restore the old values, or pass {ACCEPT_FLAG} to go on with the new ones")
    log(f"note: going on with changed specs ({listed}), as {ACCEPT_FLAG} asks"
        + ("; the interrupted epoch restarts from its first batch" if state["next_batch"] else ""))
    state["specs"] = specs
    if state["next_batch"]:
        state["next_batch"], state["epoch_sums"] = 0, [0.0, 0.0, 0.0]


def init_tables(specs: dict, seed: int) -> tuple[Decoder, torch.Tensor, torch.Tensor]:
    """A freshly initialised decoder, code table (NumSequences, CodeLength) and angle table (NumSequences, 3)."""
    torch.manual_seed(seed)
    decoder = Decoder.from_specs(specs)
    n, length = specs["NumSequences"], specs["CodeLength"]
    codes = torch.randn(n, length) * (specs["CodeInitStdDev"] / math.sqrt(length))
    angles = torch.randn(n, 3) * ANGLE_INIT_STD if specs["OptimizeRot"] else torch.zeros(n, 3)
    return decoder, codes, angles


def make_optimizers(decoder: Decoder, codes: torch.nn.Parameter,
                    angles: torch.nn.Parameter) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """(first, second): Adam over (decoder, codes, angles), and Adam over (decoder, codes); rates are set per epoch."""
    first = torch.optim.Adam([{"params": decoder.parameters(), "lr": 0.0}, {"params": [codes], "lr": 0.0},
                              {"params": [angles], "lr": 0.0}])
    second = torch.optim.Adam([{"params": decoder.parameters(), "lr": 0.0}, {"params": [codes], "lr": 0.0}])
    return first, second


@dataclass
class Run:
    """A training run in memory.

    Attributes:
        specs, seed, device: the run's settings.
        decoder: the network (on ``device``, train mode); codes (NumSequences, CodeLength) and angles
            (NumSequences, 3) as parameters.
        opt_first, opt_second: Adam with the angles (while ``OptimizeRot`` and epoch ≤ ``OptRotEpoch``), and without.
        accel: speed options; fast: whether the fast path computes the loss.
        history: ``[epoch, SDF loss, code loss, seconds]`` per finished epoch.
        sums: SDF loss sum, code loss sum and seconds of the epoch in progress.
        next_epoch, next_batch: where the run goes on.
        stopping: a stop was requested (on every rank: agreed) and the run stops after this batch.
        ddp, ddp_phase: the DistributedDataParallel wrapper under torchrun and the rotation phase it was built for.
    """

    specs: dict
    seed: int
    device: torch.device
    decoder: Decoder
    codes: torch.nn.Parameter
    angles: torch.nn.Parameter
    opt_first: torch.optim.Adam
    opt_second: torch.optim.Adam
    accel: Accel
    fast: bool
    history: list[list[float]] = field(default_factory=list)
    sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    next_epoch: int = 1
    next_batch: int = 0
    stopping: bool = False
    ddp: Any = None
    ddp_phase: bool | None = None

    @classmethod
    def build(cls, exp: Path, specs: dict, seed: int, device: torch.device, start: Start,
              files: Sequence[Path] = ()) -> "Run":
        """Initialise from ``seed``, then restore what ``start`` holds; a fresh run with
        ``"InitialRotations": "principal_axes"`` starts its angles at the principal axes of ``files``."""
        decoder, codes, angles = init_tables(specs, seed)
        st, ck = start.state, start.checkpoint
        if st is None and ck is None and specs["InitialRotations"] == "principal_axes":
            angles = alignment.initial_angles(files)
        if st is not None:
            checkpoints.load_into(decoder, st["decoder"], ws.latest_file(exp))
            codes, angles = st["codes"].clone(), st["angles"].clone()
        elif ck is not None:
            checkpoints.load_into(decoder, ck.state, ck.source)
            if ck.codes.shape != tuple(codes.shape):
                raise UserError(f"{ws.codes_file(exp, start.epoch)}: code table of shape {ck.codes.shape} but the "
                                f"specs ask for {tuple(codes.shape)} (NumSequences, CodeLength)")
            codes, angles = torch.from_numpy(ck.codes), torch.from_numpy(ck.angles)
        decoder.to(device).train()
        codes, angles = torch.nn.Parameter(codes.to(device)), torch.nn.Parameter(angles.to(device))
        run = cls(specs, seed, device, decoder, codes, angles, *make_optimizers(decoder, codes, angles),
                  accel=Accel.from_specs(specs, device),
                  fast=specs["FastPath"] and fast_path_applies(decoder, training=True))
        run._restore(st, start.epoch)
        return run

    def _restore(self, st: dict[str, Any] | None, epoch: int | None) -> None:
        if st is None:
            if epoch is not None:
                self.next_epoch = epoch + 1
            torch.manual_seed(int(rng_for(self.seed, DRAW_TORCH).integers(0, 2**62)))  # dropout stream of this run
            return
        self.next_epoch, self.next_batch = st["next_epoch"], st["next_batch"]
        self.history = [list(h) for h in st["history"]]
        self.sums = list(st["epoch_sums"])
        self.opt_first.load_state_dict(st["opt_first"])
        self.opt_second.load_state_dict(st["opt_second"])
        torch.set_rng_state(st["rng_cpu"])
        if self.device.type == "cuda" and st.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(st["rng_cuda"], self.device)

    def begin_epoch(self, epoch: int) -> torch.optim.Optimizer:
        """Set the epoch's learning rates and which parameters learn; return the optimiser that steps."""
        rates = learning_rates(self.specs, epoch)
        for opt in (self.opt_first, self.opt_second):
            for group, lr in zip(opt.param_groups, rates):
                group["lr"] = lr
        rot = rotation_phase(self.specs, epoch)
        self.angles.requires_grad_(rot)
        return self.opt_first if rot else self.opt_second

    def zero_grad(self) -> None:
        self.decoder.zero_grad(set_to_none=True)
        self.codes.grad = None
        self.angles.grad = None

    def snapshot(self, next_epoch: int, next_batch: int, completed: int) -> dict[str, Any]:
        """Everything ``latest.pth`` holds to resume exactly (see :mod:`autodecoder.model.checkpoints`)."""
        return {
            "version": __version__, "seed": self.seed, "specs": self.specs,
            "next_epoch": next_epoch, "next_batch": next_batch, "completed_epoch": completed,
            "epoch_sums": list(self.sums), "history": self.history,
            "decoder": {k: v.detach().cpu() for k, v in self.decoder.state_dict().items()},
            "codes": self.codes.detach().cpu().clone(), "angles": self.angles.detach().cpu().clone(),
            "opt_first": self.opt_first.state_dict(), "opt_second": self.opt_second.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }


def quiet(message: str) -> None:
    """A ``log`` that says nothing (ranks other than 0)."""


Log = Callable[[str], None]
