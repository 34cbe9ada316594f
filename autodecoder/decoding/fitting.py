"""Fitting a trained model to a cell it has not seen (``test.py -t fit --target FILE``).

The decoder is frozen; a new code (and, when the experiment learns rotations,
a new set of rotation angles) is optimised so that the model reproduces the
target sequence, with the sampling and the loss of training:

* Sampling (docs/method.md §2): the target is a training set of one sequence
  (:class:`autodecoder.training.data.TrainingSet`), sampled as training samples
  its sequence 0 (``OnTheFlySampling``: a fresh draw per pass).
* Batches of ``FramesPerBatch`` frames in a shuffled order per pass over the
  target's frames (:func:`autodecoder.training.schedules.epoch_order`).
* Loss: :func:`autodecoder.training.loss.loss_and_backward`, the training loss (L1 on the
  SDF, clamped with ``ClampSDFminmax``, plus the code regularisation with the
  weight of the last training epoch ``NumEpochs``). ``clamp`` (``--clamp D``)
  clamps prediction and target at ±D as ``ClampSDFminmax`` would, whatever
  the training did (as DeepSDF's reconstruction does): the loss then weighs
  the surface, not the depth inside the cell, which helps thin structures.
* Adam on the code (learning rate ``lr``) and the angles (a tenth of it),
  both divided by 10 for the last quarter of the iterations. One iteration is
  one batch.

The code starts from the mean of the learned codes (not from a learned code,
so the fit does not inherit one training cell's shape), the angles from 0 — or,
for a model trained with ``"InitialRotations": "principal_axes"``, from the
target's own principal-axes pose (:mod:`autodecoder.training.alignment`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from autodecoder.experiment.errors import UserError
from autodecoder.model.decoder import Decoder
from autodecoder.training import alignment
from autodecoder.training.data import TrainingSet
from autodecoder.training.loss import loss_and_backward, loss_clamp, mean_error
from autodecoder.training.schedules import code_regularization_weight, epoch_order

#: Defaults of ``--iterations`` and ``--lr`` (the angles' rate is a tenth of ``lr``).
DEFAULT_ITERATIONS = 800
DEFAULT_LR = 1e-2
ANGLE_LR_SHARE = 0.1
#: Share of the iterations after which both rates drop tenfold.
DECAY_AT = 0.75
#: Keys of specs.json the fit needs (they are training keys, optional for ``test.py`` otherwise).
NEEDED_KEYS = ("TrainSampleFraction", "FramesPerBatch", "OnTheFlySampling", "ClampSDFminmax",
               "ClampingDistance", "OptimizeRot", "NumEpochs", "InitialRotations")


@dataclass
class FitResult:
    """What :func:`fit_code` found.

    Attributes:
        code: float32 (CodeLength,).
        angles: float32 (3,), intrinsic XYZ Euler angles (zeros when rotations are not learned).
        losses: SDF loss (training's L1) of every iteration's batch.
        start_loss, final_loss: SDF loss over all sampled points of the target at the start and the end.
        grid_shape, n_frames: the target's grid and frame count.
    """

    code: np.ndarray
    angles: np.ndarray
    losses: list[float] = field(default_factory=list)
    start_loss: float = math.nan
    final_loss: float = math.nan
    grid_shape: tuple[int, int, int] = (0, 0, 0)
    n_frames: int = 0


def check_specs(specs: dict, source: str = "specs.json") -> None:
    """The training keys a fit needs must be in the specs (``test.py`` does not require them otherwise)."""
    missing = [k for k in NEEDED_KEYS if k not in specs]
    if missing:
        raise UserError(f"{source}: -t fit uses the training settings; missing key(s) "
                        + ", ".join(f"\"{k}\"" for k in missing))


def fit_code(decoder: Decoder, start_code: np.ndarray, specs: dict, target: str | Path,
             iterations: int = DEFAULT_ITERATIONS, lr: float = DEFAULT_LR, seed: int = 0,
             device: torch.device | str = "cpu", progress: bool = True, log: Callable[[str], None] = print,
             clamp: float | None = None) -> FitResult:
    """Optimise a code (and angles) so that the frozen ``decoder`` reproduces the sequence ``target``.

    Args:
        decoder: the trained network (its weights are not changed).
        start_code: (CodeLength,) where the code starts (the mean learned code); the angles start at 0, or at
            the target's principal-axes pose when the model was trained with ``"InitialRotations": "principal_axes"``.
        specs: the experiment's resolved specs (training keys needed, see :data:`NEEDED_KEYS`).
        target: ``.h5``/``.mat`` SDF sequence in the training layout, on any grid.
        iterations: optimisation steps (one batch of ``FramesPerBatch`` frames each), validated by the caller.
        lr: Adam learning rate of the code (the angles' is a tenth of it).
        seed: keys the point draws and the frame order.
        device: where the network runs.
        progress: show a progress bar with the loss.
        clamp: clamp prediction and target at ±clamp in the loss (default: as training).
    """
    check_specs(specs)
    device = torch.device(device)
    data = TrainingSet([Path(target)], specs["TrainSampleFraction"], specs["OnTheFlySampling"], seed, progress=False)
    loss_clamp_at = float(clamp) if clamp is not None else loss_clamp(specs)
    weight = code_regularization_weight(specs, int(specs["NumEpochs"]))  # the loss of the end of training
    # a model trained from principal-axes poses expects every cell in its own: start the fit there too
    aligned = specs["InitialRotations"] == "principal_axes"
    start_angles = alignment.initial_angles([Path(target)])[0].numpy() if aligned else np.zeros(3, np.float32)
    code, angles, opt = _fit_parameters(start_code, start_angles, bool(specs["OptimizeRot"]), lr, device)
    result = FitResult(np.zeros(0), np.zeros(0), grid_shape=data.grid_shape, n_frames=len(data))
    result.start_loss = mean_error(decoder, code, angles, data.batch(torch.arange(len(data)), 1).to(device),
                                   loss_clamp_at)
    fpb = int(specs["FramesPerBatch"])
    per_pass = math.ceil(len(data) / fpb)
    base = [g["lr"] for g in opt.param_groups]
    with _frozen(decoder), tqdm(total=iterations, unit="it", disable=not progress, dynamic_ncols=True,
                                desc=f"fit {Path(target).name}") as bar:
        for it in range(iterations):
            p, b = divmod(it, per_pass)
            if it == int(DECAY_AT * iterations):
                for g, lr0 in zip(opt.param_groups, base):
                    g["lr"] = lr0 * 0.1
            order = epoch_order(len(data), seed, p + 1)
            batch = data.batch(order[b * fpb:(b + 1) * fpb], p + 1).to(device)
            opt.zero_grad(set_to_none=True)
            sdf_loss, _ = loss_and_backward(decoder, code, angles, batch, loss_clamp_at, weight,
                                            specs["TrainChunkSize"])
            opt.step()
            result.losses.append(sdf_loss)
            bar.update(1)
            bar.set_postfix(loss=f"{sdf_loss:.5f}")
        result.final_loss = mean_error(decoder, code, angles, data.batch(torch.arange(len(data)), 1).to(device),
                                       loss_clamp_at)
    result.code = code.detach().cpu().numpy().reshape(-1).astype(np.float32)
    result.angles = angles.detach().cpu().numpy().reshape(-1).astype(np.float32)
    log(f"fit: SDF loss (L1 over the sampled points) {result.start_loss:.5f} at the start → "
        f"{result.final_loss:.5f} after {iterations} iterations")
    return result


def _fit_parameters(start_code: np.ndarray, start_angles: np.ndarray, rotate: bool, lr: float, device: torch.device):
    """The code (1, CodeLength) and angles (1, 3) being fitted, and their Adam (angles at a tenth of ``lr``)."""
    code = torch.nn.Parameter(torch.as_tensor(np.asarray(start_code, np.float32).reshape(1, -1).copy(), device=device))
    angles = torch.nn.Parameter(torch.as_tensor(np.asarray(start_angles, np.float32).reshape(1, 3).copy(),
                                                device=device), requires_grad=rotate)
    groups = [{"params": [code], "lr": lr}] + ([{"params": [angles], "lr": lr * ANGLE_LR_SHARE}] if rotate else [])
    return code, angles, torch.optim.Adam(groups)


@contextmanager
def _frozen(decoder: Decoder) -> Iterator[None]:
    """The decoder's parameters do not learn inside the block (their flags are restored after)."""
    flags = [p.requires_grad for p in decoder.parameters()]
    decoder.eval()
    for p in decoder.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(decoder.parameters(), flags):
            p.requires_grad_(f)
