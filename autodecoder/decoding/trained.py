"""Loading a trained model, and decoding it with the experiment's own options.

:func:`load_model` is the one way every command (``test.py``, ``evaluate.py``, the benchmarks)
goes from an experiment folder to a decoder ready to use: specs → checkpoint → decoder on its
device, with the decode options of ``specs.json`` (``FastPath``, ``Threads``, ``AdaptiveSafety``,
``Bf16Autocast``, ``TF32Matmul``, ``Compile``) applied by :meth:`TrainedModel.frames`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from autodecoder.decoding.adaptive import lipschitz_bound
from autodecoder.decoding.grid import decode_frames
from autodecoder.experiment import specs as specs_mod
from autodecoder.experiment.runtime import pick_device
from autodecoder.model import checkpoints
from autodecoder.model.accel import Accel
from autodecoder.model.decoder import Decoder


@dataclass
class TrainedModel:
    """A decoder with its learned tables, ready to decode.

    Attributes:
        experiment: the experiment folder.
        specs: its resolved specs (validated for decoding).
        decoder: the network, on ``device``, in eval mode.
        codes: float32 (rows, CodeLength), the learned codes.
        angles: float32 (rows, 3), the learned rotation angles (radians).
        epoch: the epoch the weights were saved at (None if unknown).
        source: the file the weights came from.
        device: where the network runs.
        accel: the speed options of the specs, resolved for ``device``.
        requested: the epoch asked for (None: the no-epoch files, ``"latest"``, or N).
    """

    experiment: Path
    specs: dict
    decoder: Decoder
    codes: np.ndarray
    angles: np.ndarray
    epoch: int | None
    source: Path
    device: torch.device
    accel: Accel
    requested: int | str | None = None

    def decode_options(self, adaptive: bool = False, levels: Iterable[float] = (0.0,)) -> dict[str, Any]:
        """Keyword arguments of :func:`autodecoder.decoding.grid.decode_frames` from the specs;
        ``levels`` are the iso-levels adaptive extraction keeps exact (0 is always one)."""
        s = self.specs
        return dict(fast=bool(s["FastPath"]), adaptive=bool(adaptive),
                    levels=tuple(sorted({0.0, *(float(v) for v in levels)})), threads=s["Threads"],
                    lipschitz=lipschitz_bound(s["AdaptiveSafety"]),
                    accel=self.accel if (self.accel.autocast or self.accel.forward) else None)

    def frames(self, code: np.ndarray, angles: np.ndarray, dims: Iterable[int] | None = None,
               n_frames: int | None = None, *, adaptive: bool = False, levels: Iterable[float] = (0.0,),
               frames: Iterable[int] | None = None, stats: dict | None = None,
               lipschitz: float | None = None) -> Iterator[np.ndarray]:
        """Yield float32 ``(X, Y, Z)`` SDF frames of ``code`` rotated by ``angles`` on the grid ``dims``
        (default ``ReconstructionDims``) at ``n_frames`` times (default ``ReconstructionFramesPerSequence``);
        ``lipschitz`` overrides the slope bound of ``AdaptiveSafety`` (for validating it)."""
        dims = tuple(int(n) for n in (dims or self.specs["ReconstructionDims"]))
        n_frames = int(n_frames or self.specs["ReconstructionFramesPerSequence"])
        options = self.decode_options(adaptive, levels)
        if lipschitz is not None:
            options["lipschitz"] = lipschitz
        return decode_frames(self.decoder, code, angles, dims, n_frames, self.specs["ReconstructionSubsetSize"],
                             self.device, frames=frames, stats=stats, **options)


def load_model(exp: str | Path, epoch: str | int | None = None, device: str | torch.device | None = None,
               specs: dict | None = None) -> TrainedModel:
    """Load the model of experiment ``exp`` at ``epoch`` (``None``: the no-epoch files, ``"latest"``, or N).

    ``specs``: already loaded specs (default: read and validated for decoding). Raises
    :class:`~autodecoder.experiment.errors.UserError` for a missing or mismatching checkpoint.
    """
    exp = Path(exp)
    specs = specs if specs is not None else specs_mod.load(exp, specs_mod.TEST)
    dev = device if isinstance(device, torch.device) else pick_device(device)
    requested = checkpoints.parse_epoch(epoch)
    ck = checkpoints.load_trained(exp, requested, specs["CodeLength"])
    decoder = Decoder.from_specs(specs)
    checkpoints.load_into(decoder, ck.state, ck.source)
    decoder.to(dev).eval()
    return TrainedModel(exp, specs, decoder, ck.codes, ck.angles, ck.epoch, ck.source, dev,
                        Accel.from_specs(specs, dev), requested)
