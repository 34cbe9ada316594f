"""How every command line of the project is built: ``train.py``, ``test.py``, ``evaluate.py``, the
MATLAB ports, the benchmarks and the demo.

* :func:`parser` makes an ``argparse`` parser whose errors are one line (``error: <prog>: …``) and
  whose ``--help`` ends with examples.
* :func:`run` parses the arguments and calls the command: a :class:`UserError` becomes one line
  ``error: …`` on stderr and exit status 2; Ctrl-C and SIGTERM stop it cleanly (temporaries are
  removed by the ``finally`` blocks on the way out) with exit status 130; warnings are printed as
  one line ``warning: …``.
* The ``add_*`` helpers add the options that several commands share, with one wording.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from typing import Callable, Sequence

import torch

from autodecoder.decoding.options import Shard, parse_shard
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import EXIT_STOPPED, MEMORY_FLAG, break_lock, terminate_as_interrupt
from autodecoder.training.distributed import context_from_environment

#: Exit status of a command stopped by Ctrl-C or SIGTERM (the shell's 128 + SIGINT).
INTERRUPTED = EXIT_STOPPED
#: Exit status of a refused input.
REFUSED = 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and the epilog's line breaks kept."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:
        raise UserError(f"{self.prog}: {message} (see --help)")


def parser(prog: str, description: str, examples: Sequence[str] = (), parser_class: type = Parser) -> Parser:
    """A parser for ``prog``; ``examples`` (command lines) are listed at the end of ``--help``."""
    epilog = ("examples:\n" + "\n".join(f"  {e}" for e in examples)) if examples else None
    return parser_class(prog=prog, description=description, epilog=epilog)


def subcommands(p: Parser, metavar: str = "MODE") -> argparse._SubParsersAction:
    """Sub-commands (``evaluate.py compare …``) built with the same parser class."""
    return p.add_subparsers(dest="mode", metavar=metavar, required=True, parser_class=Parser)


def _one_line_warnings() -> None:
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr)
    warnings.showwarning = show


def guard(fn: Callable[[], int]) -> int:
    """Run ``fn``: one-line errors and warnings, exit status 2 on bad input and 130 on Ctrl-C."""
    _one_line_warnings()
    try:
        with terminate_as_interrupt():  # SIGTERM (Slurm, timeout, container stop) ends like Ctrl-C
            return fn()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return REFUSED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED


def run(p: Parser, command: Callable[[argparse.Namespace], int | None], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with ``p`` and call ``command(args)`` under :func:`guard`; returns the exit status."""
    def go() -> int:
        code = command(p.parse_args(argv))
        return 0 if code is None else int(code)
    return guard(go)


# --------------------------------------------------------------------------
# options shared by several commands

def add_experiment(p: argparse.ArgumentParser, required: bool = True, default: str | None = None) -> None:
    p.add_argument("-x", "--experiment", required=required, default=default,
                   help="experiment folder holding specs.json")


def add_epoch(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("-e", "--epoch", default=default,
                   help="epoch N, or latest (default: the no-epoch files model.pth, lat_vecs.mat, rot_angs.mat)"
                   if default is None else f"epoch N, or latest (default {default})")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if present, else cpu)")


def add_seed(p: argparse.ArgumentParser, default: int | None = None) -> None:
    p.add_argument("--seed", type=int, default=default,
                   help="seed of every random draw" + (" (default: drawn and recorded)" if default is None
                                                       else f" (default {default})"))


def add_sdf_inputs(p: argparse.ArgumentParser, default_dir: str, per_file: bool = True) -> None:
    """SDF files or folders of them, and ``--out`` (default: ``default_dir`` next to each file;
    with ``per_file`` one sub-folder per file) — the MATLAB ports' inputs."""
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="SDF files (.h5, .mat) or folders of them")
    p.add_argument("--out", help=(f"output root; files go to OUT/<file stem>/ (default: {default_dir}/ next to "
                                  "each file)") if per_file else f"output folder (default: {default_dir}/ next to "
                                                                 "each file)")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_safety(p: argparse.ArgumentParser, folder: str) -> None:
    """``--ignore-memory-check`` and ``--break-lock`` (of ``folder``, e.g. "the experiment")."""
    p.add_argument(MEMORY_FLAG, dest="ignore_memory", action="store_true",
                   help="start even when the memory estimate exceeds what this process may use")
    p.add_argument("--break-lock", action="store_true",
                   help=f"remove the lock of {folder} left by a run that died on another machine "
                        "(a run still alive on this machine is never unlocked)")


def add_shard(p: argparse.ArgumentParser, what: str, prog: str) -> None:
    """``--shard I/N``: this process writes only ``what`` k with k mod N = I (job arrays; torchrun does it itself)."""
    p.add_argument("--shard", metavar="I/N", help=f"write only {what} k with k mod N = I (I from 0), e.g. a "
                   "job array's task; needs --seed; the union of the shards is byte for byte one run; shards lock "
                   "<out>/.shard-I-of-N, so they may run at once; under torchrun every rank is the shard "
                   f"RANK/WORLD_SIZE (torchrun --nproc_per_node=N {prog} … --seed S)")


def shard_device_progress(args: argparse.Namespace) -> tuple[Shard | None, str | None, bool]:
    """The shard, device and progress bar of this process: ``--shard``, or under torchrun the shard
    ``RANK / WORLD_SIZE`` on its own device (GPU ``LOCAL_RANK``), only rank 0 showing progress."""
    ctx = context_from_environment()
    if not ctx.active:
        return (parse_shard(args.shard) if args.shard is not None else None), args.device, not args.no_progress
    if args.shard is not None:
        raise UserError(f"--shard {args.shard}: not under torchrun, which gives every rank its shard already")
    device = args.device
    if (device is None and torch.cuda.is_available()) or (device or "").startswith("cuda"):
        device = f"cuda:{ctx.local_rank}"  # one GPU per rank
    return Shard(ctx.rank, ctx.world), device, ctx.main and not args.no_progress


def break_stale_lock(folder, requested: bool, log: Callable[[str], None] = print) -> None:
    """``--break-lock``: remove the lock of ``folder`` (refused while its process runs on this host)."""
    if requested and break_lock(folder) is not None:
        log(f"note: {folder}: removed the lock, as --break-lock asks")


# --------------------------------------------------------------------------
# argument types

def optional_int(text: str) -> int | None:
    """An integer, or ``none``."""
    if text.strip().lower() in ("none", "off", "no"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


def optional_float(text: str) -> float | None:
    """A number, or ``none``."""
    if text.strip().lower() in ("none", "off", "no"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def voxel_size(text: str) -> tuple[float, float, float]:
    """``0.2`` (isotropic) or ``0.2,0.2,0.5``: µm along X, Y, Z."""
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected one or three numbers (µm), got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or not all(math.isfinite(v) and v > 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected one or three positive numbers (µm), got {text!r}")
    return (vals[0], vals[1], vals[2])
