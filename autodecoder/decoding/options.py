"""The options of ``test.py``: which type uses which option, their checks and defaults, and the exports.

Every check of an option lives here, once: :func:`check_options` refuses an option given to a type
that does not use it, a type's missing required option, and out-of-range values, each with one line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import TypeVar

from autodecoder.decoding.priors import PRIORS
from autodecoder.experiment.errors import UserError
from autodecoder.io.exports import FILO_THRESHOLD
from autodecoder.io.sequences import COMPACT_BAND, COMPACT_OUTSIDE, STORES, Storage

T = TypeVar("T")

#: The types of ``test.py -t``: the original's three, then the ones this project adds.
TYPES = ("reconstruct", "generate", "generate_filo", "sample", "fit", "interpolate")
DEFAULT_TEMPERATURE = 1.0
DEFAULT_STEPS = 5
DEFAULT_PATH = "slerp"
#: The priors of ``-t sample --prior``. The default is the one ``benchmarks/generation_quality.py`` found
#: closest to held-out cells (benchmarks/README.md); ``--around`` without ``--prior`` uses the Gaussian,
#: the only prior with a centre.
PRIOR_NAMES = tuple(PRIORS)
DEFAULT_PRIOR = "kde"
AROUND_PRIOR = "gaussian"


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
    prior: str | None = None


#: Option → (its command-line flag, the types that use it).
OPTION_TYPES = {
    "temperature": ("--temperature", ("sample",)),
    "num": ("--num", ("sample",)),
    "pca": ("--pca", ("sample",)),
    "around": ("--around", ("sample",)),
    "prior": ("--prior", ("sample",)),
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
    "prior": (f"one of {', '.join(PRIOR_NAMES)}", lambda v: v in PRIOR_NAMES),
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
    if opts.around is not None and opts.prior not in (None, AROUND_PRIOR):  # a centre is the Gaussian's alone
        raise UserError(f"--around {opts.around}: only used by --prior {AROUND_PRIOR}, not by --prior {opts.prior}")
    if opts.around is not None and opts.prior is None:
        opts = replace(opts, prior=AROUND_PRIOR)
    return opts


def resolve_storage(store: str | None, adaptive: bool, exports: Exports | None, band: int | None = None) -> Storage:
    """``--store`` and ``--band``: how the frames are stored (:class:`~autodecoder.io.sequences.Storage`).

    Default ``compact`` with adaptive extraction (its values far from the surface are interpolated
    anyway), ``dense`` otherwise (the original's files). ``compact`` keeps the masks at 0, the
    filopodial 0.035 and ``--threshold``; ``mask`` stores ``sdf <= --threshold`` and has no exports.
    """
    mode = store if store is not None else ("compact" if adaptive else "dense")
    threshold = exports.threshold if exports is not None else 0.0
    if mode not in STORES:
        raise UserError(f"--store {mode}: expected one of {', '.join(STORES)}")
    if band is not None and mode != "compact":
        raise UserError(f"--band {band}: only used by --store compact, not by --store {mode}")
    if band is not None and band < 1:  # marching cubes reads the voxels just outside the surface
        raise UserError(f"--band {band}: expected an integer >= 1 (voxels kept beyond the cell)")
    if mode == "mask" and exports is not None and exports.any():
        raise UserError("--store mask: the exports (--tif, --png, --mesh) read SDF values; use --store compact")
    if mode == "compact" and not threshold < COMPACT_OUTSIDE:
        raise UserError(f"--threshold {threshold:g}: compact files store {COMPACT_OUTSIDE:g} beyond their band; "
                        f"expected a threshold below {COMPACT_OUTSIDE:g} (or --store dense)")
    return Storage(mode, levels=tuple(sorted({0.0, FILO_THRESHOLD, float(threshold)})),
                   band=COMPACT_BAND if band is None else int(band), threshold=float(threshold))


@dataclass(frozen=True)
class Shard:
    """``--shard I/N``: this process writes sequence ``k`` of a type's list when ``k mod N == I``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def lock_folder(self) -> str:
        """The folder (inside the output folder) whose lock this shard holds: one per shard."""
        return f".shard-{self.index}-of-{self.count}"

    def take(self, items: list[T]) -> list[T]:
        """This shard's items: every N-th from the I-th (round robin: neighbours, often alike, spread out)."""
        return items[self.index::self.count]


def parse_shard(text: str) -> Shard:
    """``I/N`` with ``0 <= I < N``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if m is None:
        raise UserError(f"--shard {text}: expected I/N, shard I of N counted from 0 (e.g. 0/4 … 3/4)")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or index >= count:
        raise UserError(f"--shard {text}: expected 0 <= I < N (shards are counted from 0), N >= 1")
    return Shard(index, count)


def check_shard(shard: Shard | None, kind: str, seed: int | None, replace: bool) -> None:
    """Refuse what would make the shards differ from one run, or race with one another."""
    if shard is None:
        return
    if kind == "fit":
        raise UserError(f"--shard {shard}: -t fit decodes one sequence; nothing to split")
    if seed is None:
        raise UserError(f"--shard {shard}: needs --seed S, the same for every shard, so that they draw the "
                        "sequences of one run")
    if replace and shard.count > 1:
        raise UserError(f"--shard {shard}: not with --replace (shards running at once would remove the same "
                        "files); clear the folder first, or use a new one")
