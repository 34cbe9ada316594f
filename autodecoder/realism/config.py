"""Every setting of the realism step, with its default and its check.

A run's settings are one :class:`RealismConfig`. ``--config FILE.json`` holds any of its keys as one
flat object (``{"steps": 20000, "weight_cycle": 5}``); the command line's flags (``--paired``,
``--dims``, ``--patch``, ``--batch``, ``--steps``, ``--seed``) override the file. Unknown keys are
errors with a "did you mean" hint, as in the synthesis configuration. The settings are saved with
every checkpoint; a resumed run must keep those that change what training computes
(:func:`changed_settings`).

Sizes are voxels; ``patch`` is the edge of a training patch, cubic in 3-D ``(Z, Y, X)`` and square in
2-D ``(Y, X)`` (z slices of the frames). Intensities enter the networks normalised per dataset:
percentile ``percentiles[0]`` -> -1 and ``percentiles[1]`` -> +1.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.specs import read_json
from autodecoder.experiment.specs import refuse_unknown_key
from autodecoder.microscopy.config import convert_setting

#: The two ways to learn realism.
MODES = ("unpaired", "paired")

#: Settings a resumed run may change: they do not change what a step computes.
FREE_SETTINGS = ("steps", "checkpoint_every", "cached_frames")


@dataclass
class RealismConfig:
    """The settings of one realism run (defaults in brackets in docs/realism.md).

    mode: ``unpaired`` (CycleGAN-style: two generators synthetic <-> real, two discriminators, cycle
        and identity losses; needs no pairs) or ``paired`` (pix2pix-style: one generator from the
        masks to the image, a discriminator conditioned on the masks, an L1 loss; needs masks of the
        real images).
    dims: 3 (3-D patches and networks) or 2 (2-D networks on z slices, applied slice by slice).
    patch, batch: patch edge (None: 32 in 3-D, 64 in 2-D) and patches per step (None: 2 in 3-D,
        8 in 2-D); patches are shrunk along an axis where a frame is smaller.
    steps: optimisation steps; decay_from: fraction of the steps after which both learning rates
        fall linearly to zero at the last step.
    lr_generator, lr_discriminator, beta1, beta2: Adam.
    weight_adversarial, weight_cycle, weight_identity (unpaired), weight_l1 (paired): loss weights.
    channels, res_units: the generator U-Net's channels per level (each level halves the size) and
        residual units per level; disc_channels, disc_layers: the patch discriminator.
    percentiles: intensity normalisation (percent).
    flips: random flips of the patches along y and x.
    seed: of every random draw (None: drawn and recorded).
    checkpoint_every: steps between checkpoints (also written at the end and on Ctrl-C).
    cached_frames: normalised frames kept in memory per dataset while sampling patches.
    """

    mode: str = "unpaired"
    dims: int = 3
    patch: int | None = None
    batch: int | None = None
    steps: int = 5000
    decay_from: float = 0.5
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_adversarial: float = 1.0
    weight_cycle: float = 10.0
    weight_identity: float = 0.0
    weight_l1: float = 100.0
    channels: tuple[int, ...] = (16, 32, 64)
    res_units: int = 2
    disc_channels: int = 32
    disc_layers: int = 3
    percentiles: tuple[float, float] = (0.5, 99.9)
    flips: bool = True
    seed: int | None = None
    checkpoint_every: int = 250
    cached_frames: int = 16

    def __post_init__(self) -> None:
        if self.patch is None:
            self.patch = 32 if self.dims == 3 else 64
        if self.batch is None:
            self.batch = 2 if self.dims == 3 else 8

    @property
    def paired(self) -> bool:
        return self.mode == "paired"

    @property
    def down_factor(self) -> int:
        """The generator's total down-sampling: tile corners and padded sizes are multiples of it."""
        return 2 ** (len(self.channels) - 1)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (tuples as lists), as stored in checkpoints and ``realism.json``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _channels_default(value: Any, where: str) -> tuple:
    """``channels`` has no fixed length: a list of 2 … 6 integers."""
    if not isinstance(value, (list, tuple)) or not 2 <= len(value) <= 6:
        raise UserError(f"{where}: expected a list of 2 to 6 channel counts, got {value!r}")
    return tuple(convert_setting(v, 1, where) for v in value)


def build_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                 saved: dict[str, Any] | None = None) -> RealismConfig:
    """Defaults, then ``saved`` (a checkpoint's settings), then the JSON file ``path``, then ``overrides``
    (the flags given; None values are left out), checked."""
    values: dict[str, Any] = {}
    names = [f.name for f in dataclasses.fields(RealismConfig)]
    defaults = {f.name: f.default for f in dataclasses.fields(RealismConfig)}
    sources = [("checkpoint", saved or {})]
    if path is not None:
        if not Path(path).is_file():
            raise UserError(f"--config {path}: file not found (expected a JSON object of realism settings)")
        sources.append((str(path), read_json(Path(path))))
    sources.append(("command line", {k: v for k, v in (overrides or {}).items() if v is not None}))
    for source, raw in sources:
        for key, value in raw.items():
            if key not in names:
                refuse_unknown_key(source, key, names)
            where = f"{source}: \"{key}\""
            if key == "channels":
                values[key] = _channels_default(value, where)
            elif defaults[key] is None:  # patch, batch, seed: an integer or null
                values[key] = None if value is None else convert_setting(value, 1, where)
            else:
                values[key] = convert_setting(value, defaults[key], where)
    config = RealismConfig(**values)
    check(config)
    return config


def check(config: RealismConfig) -> None:
    """One-line errors for values out of range (the data checks the patch against the frames)."""
    c = config
    rules = [
        (c.mode in MODES, "mode", f"one of {', '.join(MODES)}"),
        (c.dims in (2, 3), "dims", "2 (slices) or 3 (volumes)"),
        (c.patch >= 4 * c.down_factor and c.patch % c.down_factor == 0, "patch",
         f"a multiple of {c.down_factor} (the U-Net's down-sampling) and at least {4 * c.down_factor}"),
        (c.batch >= 1 and c.steps >= 1, "batch/steps", "integers >= 1"),
        (0 <= c.decay_from <= 1, "decay_from", "a fraction in [0, 1]"),
        (c.lr_generator > 0 and c.lr_discriminator > 0, "lr_generator/lr_discriminator", "numbers > 0"),
        (0 <= c.beta1 < 1 and 0 <= c.beta2 < 1, "beta1/beta2", "numbers in [0, 1)"),
        (min(c.weight_adversarial, c.weight_cycle, c.weight_identity, c.weight_l1) >= 0,
         "weight_*", "numbers >= 0"),
        (min(c.channels) >= 1 and c.res_units >= 0, "channels/res_units", "channels >= 1 and res_units >= 0"),
        (c.disc_channels >= 1 and c.disc_layers >= 1, "disc_channels/disc_layers", "integers >= 1"),
        (0 <= c.percentiles[0] < c.percentiles[1] <= 100, "percentiles", "two percents 0 <= low < high <= 100"),
        (c.seed is None or c.seed >= 0, "seed", "a non-negative integer"),
        (c.checkpoint_every >= 1 and c.cached_frames >= 1, "checkpoint_every/cached_frames", "integers >= 1"),
    ]
    for ok, key, expected in rules:
        if not ok:
            raise UserError(f"realism setting \"{key}\": expected {expected}")
    if discriminator_output(c.patch, c.disc_layers) < 1:
        raise UserError(f"realism settings \"patch\" {c.patch} and \"disc_layers\" {c.disc_layers}: the patch "
                        "discriminator's output would be empty; use a larger patch or fewer layers")


def discriminator_output(size: int, layers: int) -> int:
    """Edge of the patch discriminator's output for an input edge ``size`` (kernel 4, padding 1:
    ``layers`` convolutions of stride 2, then two of stride 1)."""
    for _ in range(layers):
        size = (size + 2 - 4) // 2 + 1
    for _ in range(2):
        size = size + 2 - 4 + 1
    return size


def changed_settings(saved: dict[str, Any], current: RealismConfig) -> list[tuple[str, Any, Any]]:
    """``(key, saved, current)`` for each setting that changes what training computes and differs."""
    now = current.as_dict()
    return [(k, saved.get(k), now[k]) for k in now if k not in FREE_SETTINGS and saved.get(k) != now[k]]


__all__ = ["MODES", "FREE_SETTINGS", "RealismConfig", "build_config", "check", "discriminator_output",
           "changed_settings"]
