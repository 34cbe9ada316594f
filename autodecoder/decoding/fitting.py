"""Fitting a trained model to a cell it has not seen (``test.py -t fit --target FILE``).

The decoder is frozen; a new code (and, when the experiment learns rotations,
a new set of rotation angles) is optimised so that the model reproduces the
target sequence, with the sampling and the loss of training:

* Sampling (SPEC §2): per frame ``int(N0·N1·N2 · TrainSampleFraction)``
  points, 70 % near the surface, drawn by :func:`autodecoder.sampling.draw`
  with the generators of training (keys ``(seed, DRAW_FIXED, 0, t)``; with
  ``OnTheFlySampling`` a full-size pool per frame and a fresh draw per pass
  ``(seed, DRAW_EPOCH, pass, 0, t)``).
* Batches of ``FramesPerBatch`` frames in a shuffled order per pass over the
  target's frames (:func:`autodecoder.training.epoch_order`).
* Loss: :func:`autodecoder.training.batch_loss`, the training loss (L1 on the
  SDF, clamped with ``ClampSDFminmax``, plus the code regularisation with the
  weight of the last training epoch ``NumEpochs``). ``clamp`` (``--clamp D``)
  clamps prediction and target at ±D as ``ClampSDFminmax`` would, whatever
  the training did (as DeepSDF's reconstruction does): the loss then weighs
  the surface, not the depth inside the cell, which helps thin structures.
* Adam on the code (learning rate ``lr``) and the angles (``lr_angles``),
  both divided by 10 for the last quarter of the iterations. One iteration is
  one batch.

The code starts from the mean of the learned codes (not from a learned code,
so the fit does not inherit one training cell's shape), the angles from 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from autodecoder.training import sampling
from autodecoder.training.data import Batch
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.geometry import frame_times
from autodecoder.model.points import index_to_points
from autodecoder.io.sequences import SequenceFile
from autodecoder.model.decoder import Decoder
from autodecoder.training.loop import batch_loss, epoch_order

#: Defaults of ``--iterations`` and ``--lr`` (the angles' rate is a tenth of ``lr``).
DEFAULT_ITERATIONS = 800
DEFAULT_LR = 1e-2
ANGLE_LR_SHARE = 0.1
#: Share of the iterations after which both rates drop tenfold.
DECAY_AT = 0.75
#: Keys of specs.json the fit needs (they are training keys, optional for ``test.py`` otherwise).
NEEDED_KEYS = ("TrainSampleFraction", "FramesPerBatch", "OnTheFlySampling", "ClampSDFminmax",
               "ClampingDistance", "OptimizeRot", "NumEpochs")


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


class TargetSamples:
    """The sampled points of one sequence file, drawn as :class:`autodecoder.data.TrainingSet` draws them
    (the file is sequence 0)."""

    def __init__(self, path: str | Path, fraction: float, on_the_fly: bool, seed: int) -> None:
        self.path = Path(path)
        self.on_the_fly = on_the_fly
        self.seed = int(seed)
        index, values = [], []
        with SequenceFile(self.path) as f:
            self.grid_shape = f.grid_shape
            self.n_frames = f.n_frames
            n_vox = int(np.prod(self.grid_shape))
            self.n_points = sampling.sample_count(n_vox, fraction)
            if self.n_points < 1:
                raise UserError(f"\"TrainSampleFraction\" {fraction} draws no point from a "
                                f"{self.grid_shape} grid ({self.path.name})")
            for t, frame in enumerate(f.frames()):
                where = f"{self.path}: frame {t}"
                if on_the_fly:
                    idx = sampling.draw(frame, n_vox, sampling.rng_for(self.seed, sampling.DRAW_POOL, 0, t), where)
                else:
                    idx = sampling.draw(frame, self.n_points,
                                        sampling.rng_for(self.seed, sampling.DRAW_FIXED, 0, t), where)
                index.append(idx.astype(np.int64))
                values.append(frame.reshape(-1)[idx])
        self.index = torch.from_numpy(np.stack(index))
        self.values = torch.from_numpy(np.stack(values))
        self.times = torch.from_numpy(frame_times(self.n_frames))

    def __len__(self) -> int:
        return self.n_frames

    def batch(self, items: torch.Tensor, epoch: int) -> Batch:
        """The samples of frames ``items`` for pass ``epoch`` (1-based)."""
        items = torch.as_tensor(items, dtype=torch.int64)
        if self.on_the_fly:
            rows_i, rows_v = [], []
            for t in items.tolist():
                pick = torch.from_numpy(sampling.draw(
                    self.values[t].numpy(), self.n_points,
                    sampling.rng_for(self.seed, sampling.DRAW_EPOCH, epoch, 0, t), f"{self.path}: frame {t}"))
                rows_i.append(self.index[t][pick])
                rows_v.append(self.values[t][pick])
            index, values = torch.stack(rows_i), torch.stack(rows_v)
        else:
            index, values = self.index[items], self.values[items]
        return Batch(index_to_points(index, self.grid_shape), values, self.times[items],
                     torch.zeros(len(items), dtype=torch.int64))


def check_specs(specs: dict, source: str = "specs.json") -> None:
    """The training keys a fit needs must be in the specs (``test.py`` does not require them otherwise)."""
    missing = [k for k in NEEDED_KEYS if k not in specs]
    if missing:
        raise UserError(f"{source}: -t fit uses the training settings; missing key(s) "
                        + ", ".join(f"\"{k}\"" for k in missing))


def fit_code(decoder: Decoder, start_code: np.ndarray, specs: dict, target: str | Path,
             iterations: int = DEFAULT_ITERATIONS, lr: float = DEFAULT_LR, lr_angles: float | None = None,
             seed: int = 0, device: torch.device | str = "cpu", progress: bool = True,
             start_angles: np.ndarray | None = None, log: Callable[[str], None] = print,
             clamp: float | None = None) -> FitResult:
    """Optimise a code (and angles) so that the frozen ``decoder`` reproduces the sequence ``target``.

    Args:
        decoder: the trained network (its weights are not changed).
        start_code: (CodeLength,) where the code starts (the mean learned code).
        specs: the experiment's resolved specs (training keys needed, see :data:`NEEDED_KEYS`).
        target: ``.h5``/``.mat`` SDF sequence in the training layout, on any grid.
        iterations: optimisation steps (one batch of ``FramesPerBatch`` frames each).
        lr: Adam learning rate of the code; ``lr_angles`` that of the angles (default ``lr / 10``).
        seed: keys the point draws and the frame order.
        device: where the network runs.
        progress: show a progress bar with the loss.
        start_angles: where the angles start (default 0, the identity).
        clamp: clamp prediction and target at ±clamp in the loss (default: as training).
    """
    check_specs(specs)
    if clamp is not None:
        if not (clamp > 0 and math.isfinite(clamp)):
            raise UserError(f"--clamp {clamp}: expected a number > 0")
        specs = {**specs, "ClampSDFminmax": True, "ClampingDistance": float(clamp)}
    if iterations < 1:
        raise UserError(f"--iterations {iterations}: expected an integer >= 1")
    if not (lr > 0 and math.isfinite(lr)):
        raise UserError(f"--lr {lr}: expected a number > 0")
    lr_angles = lr * ANGLE_LR_SHARE if lr_angles is None else lr_angles
    device = torch.device(device)
    data = TargetSamples(target, specs["TrainSampleFraction"], specs["OnTheFlySampling"], seed)
    rotate = bool(specs["OptimizeRot"])
    epoch = int(specs["NumEpochs"])  # the loss of the end of training (code-regularisation weight)

    decoder.to(device).eval()
    frozen = [p.requires_grad for p in decoder.parameters()]
    for p in decoder.parameters():
        p.requires_grad_(False)
    code = torch.nn.Parameter(torch.as_tensor(np.asarray(start_code, np.float32).reshape(1, -1).copy(),
                                              device=device))
    a0 = np.zeros(3, np.float32) if start_angles is None else np.asarray(start_angles, np.float32)
    angles = torch.nn.Parameter(torch.as_tensor(a0.reshape(1, 3).copy(), device=device), requires_grad=rotate)
    groups = [{"params": [code], "lr": lr}]
    if rotate:
        groups.append({"params": [angles], "lr": lr_angles})
    opt = torch.optim.Adam(groups)
    base = [g["lr"] for g in opt.param_groups]

    def full_loss() -> float:
        with torch.no_grad():
            b = data.batch(torch.arange(len(data)), 1).to(device)
            return float(batch_loss(decoder, code, angles, b, specs, epoch)[0])

    result = FitResult(np.zeros(0), np.zeros(0), grid_shape=data.grid_shape, n_frames=data.n_frames)
    result.start_loss = full_loss()
    fpb = int(specs["FramesPerBatch"])
    per_pass = math.ceil(len(data) / fpb)
    bar = tqdm(total=iterations, unit="it", disable=not progress, dynamic_ncols=True,
               desc=f"fit {Path(target).name}")
    try:
        for it in range(iterations):
            p, b = divmod(it, per_pass)
            if it == int(DECAY_AT * iterations):
                for g, lr0 in zip(opt.param_groups, base):
                    g["lr"] = lr0 * 0.1
            order = epoch_order(len(data), seed, p + 1)
            batch = data.batch(order[b * fpb:(b + 1) * fpb], p + 1).to(device)
            sdf_loss, code_loss = batch_loss(decoder, code, angles, batch, specs, epoch)
            opt.zero_grad(set_to_none=True)
            (sdf_loss + code_loss).backward()
            opt.step()
            result.losses.append(float(sdf_loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{result.losses[-1]:.5f}")
    finally:
        bar.close()
        for p_, f in zip(decoder.parameters(), frozen):
            p_.requires_grad_(f)
    result.final_loss = full_loss()
    result.code = code.detach().cpu().numpy().reshape(-1).astype(np.float32)
    result.angles = angles.detach().cpu().numpy().reshape(-1).astype(np.float32)
    log(f"fit: SDF loss (L1 over the sampled points) {result.start_loss:.5f} at the start → "
        f"{result.final_loss:.5f} after {iterations} iterations")
    return result
