"""The options of ``test.py``: which type uses which option, their checks and defaults, and the exports.

Every check of an option lives here, once: :func:`check_options` refuses an option given to a type
that does not use it, a type's missing required option, and out-of-range values, each with one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from autodecoder.experiment.errors import UserError

#: The types of ``test.py -t``: the original's three, then the ones this project adds.
TYPES = ("reconstruct", "generate", "generate_filo", "sample", "fit", "interpolate")
DEFAULT_TEMPERATURE = 1.0
DEFAULT_STEPS = 5
DEFAULT_PATH = "slerp"


@dataclass
class Exports:
    """What to write beside each output file (see :func:`autodecoder.io.exports.export_sequence`)."""

    tif: bool = False
    png: bool = False
    mesh: str | None = None
    threshold: float = 0.0
    units: str = "normalised"
    voxel_size: tuple[float, float, float] | None = None

    def any(self) -> bool:
        return self.tif or self.png or self.mesh is not None


@dataclass
class LatentOptions:
    """The options of the added types (``None``: not given). See :data:`OPTION_TYPES` for who uses which."""

    temperature: float | None = None
    num: int | None = None
    pca: int | None = None
    around: str | None = None
    target: str | None = None
    start: int | None = None
    end: int | None = None
    steps: int | None = None
    path: str | None = None
    iterations: int | None = None
    lr: float | None = None
    clamp: float | None = None


#: Option → (its command-line flag, the types that use it).
OPTION_TYPES = {
    "temperature": ("--temperature", ("sample",)),
    "num": ("--num", ("sample",)),
    "pca": ("--pca", ("sample",)),
    "around": ("--around", ("sample",)),
    "target": ("--target", ("fit",)),
    "iterations": ("--iterations", ("fit",)),
    "lr": ("--lr", ("fit",)),
    "clamp": ("--clamp", ("fit",)),
    "start": ("--from", ("interpolate",)),
    "end": ("--to", ("interpolate",)),
    "steps": ("--steps", ("interpolate",)),
    "path": ("--path", ("interpolate",)),
}
REQUIRED_OPTIONS = {"fit": ("target",), "interpolate": ("start", "end")}
REQUIRED_USAGE = {"fit": "--target FILE", "interpolate": "--from I --to J"}
#: Option → (what a valid value is, the check).
RANGES = {
    "num": ("an integer >= 1", lambda v: v >= 1),
    "temperature": ("a number >= 0", lambda v: v >= 0 and math.isfinite(v)),
    "steps": ("an integer >= 2 (both ends are included)", lambda v: v >= 2),
    "path": ("linear or slerp", lambda v: v in ("linear", "slerp")),
    "iterations": ("an integer >= 1", lambda v: v >= 1),
    "lr": ("a number > 0", lambda v: v > 0 and math.isfinite(v)),
    "clamp": ("a number > 0", lambda v: v > 0 and math.isfinite(v)),
    "pca": ("an integer >= 1", lambda v: v >= 1),
}


def check_options(kind: str, options: LatentOptions | None) -> LatentOptions:
    """Refuse an option given to a type that does not use it, a type's missing required option, or a
    value out of range; return the options (empty ones when None)."""
    if kind not in TYPES:
        raise UserError(f"-t {kind}: unknown type; expected one of {', '.join(TYPES)}")
    opts = options or LatentOptions()
    for f in fields(opts):
        flag, users = OPTION_TYPES[f.name]
        if getattr(opts, f.name) is not None and kind not in users:
            raise UserError(f"{flag}: only used by -t {' / -t '.join(users)}, not by -t {kind}")
    missing = [OPTION_TYPES[n][0] for n in REQUIRED_OPTIONS.get(kind, ()) if getattr(opts, n) is None]
    if missing:
        raise UserError(f"-t {kind}: needs {REQUIRED_USAGE[kind]} (missing {' and '.join(missing)})")
    for name, (what, ok) in RANGES.items():
        value = getattr(opts, name)
        if value is not None and not ok(value):
            raise UserError(f"{OPTION_TYPES[name][0]} {value}: expected {what}")
    return opts
