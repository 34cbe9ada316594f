"""Learning-rate schedules of ``LearningRateSchedule`` (SPEC §4), evaluated at the 1-based epoch."""

from __future__ import annotations

from typing import Any, Callable, Mapping


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
