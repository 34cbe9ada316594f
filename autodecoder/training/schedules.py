"""The formulas of training that change with the epoch (docs/method.md §4), as small pure functions.

Learning-rate schedules evaluated at the 1-based epoch (``Step``, ``Warmup``, ``Constant``), the
codes' ×10 rate with rotations, which optimiser steps, the code-regularisation weight, and the
shuffled order of the frames in an epoch (a function of the seed and the epoch only).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from autodecoder.training.sampling import DRAW_ORDER, rng_for

#: With ``OptimizeRot`` the codes learn this many times faster than their schedule.
CODE_LR_FACTOR_WITH_ROT = 10.0


def schedule(spec: Mapping[str, Any]) -> Callable[[int], float]:
    """A function ``epoch -> learning rate`` for one validated schedule entry.

    * ``Step``: ``Initial · Factor ** floor(epoch / Interval)``
    * ``Warmup``: ``Initial`` to ``Final`` linearly over ``Length`` epochs, then ``Final``
    * ``Constant``: ``Value``
    """
    kind = spec["Type"]
    if kind == "Step":
        initial, interval, factor = spec["Initial"], spec["Interval"], spec["Factor"]
        return lambda epoch: initial * factor ** (epoch // interval)
    if kind == "Warmup":
        initial, final, length = spec["Initial"], spec["Final"], spec["Length"]
        return lambda epoch: final if epoch > length else initial + (final - initial) * epoch / length
    if kind == "Constant":
        value = spec["Value"]
        return lambda epoch: value
    raise ValueError(f"unknown schedule type {kind!r}")


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

    Without ``OptimizeRot``: ``λ · min(1, epoch/1000)``; with it: ``1000 · λ / min(1, epoch/100)``
    (at every epoch). 0 when ``CodeRegularization`` is off.
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
