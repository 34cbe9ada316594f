"""What the port scripts share: argument types, finding SDF files, running a CLI."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Sequence

from autodecoder.cli.commands import _guard, _Parser  # one-line "error: …", exit 2; one-line warnings
from autodecoder.experiment.errors import UserError
from autodecoder.io.exports import parse_voxel_size

__all__ = ["Parser", "run_guarded", "optional_int", "optional_float", "positive_float", "voxel_size_arg",
           "collect_sdf_files", "sdf_inputs", "frames_bar", "each_sequence", "UserError"]

SDF_SUFFIXES = (".h5", ".mat")


class Parser(_Parser):
    """argparse with one-line errors and the epilog's line breaks kept (for the example)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)


def run_guarded(fn: Callable[[], int]) -> int:
    """Run ``fn``; a :class:`UserError` becomes ``error: …`` on stderr and exit status 2."""
    return _guard(fn)


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


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def voxel_size_arg(text: str) -> tuple[float, float, float]:
    """``0.2`` (isotropic) or ``0.2,0.2,0.5`` (µm along X, Y, Z); shared with test.py."""
    return parse_voxel_size(text)


def collect_sdf_files(inputs: Sequence[str | Path]) -> list[Path]:
    """SDF files from files and folders (a folder's ``.h5`` and ``.mat`` files, in string order).

    Raises:
        UserError: a path that does not exist, a file that is not ``.h5``/``.mat``,
            or no SDF file at all.
    """
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted((f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SDF_SUFFIXES),
                           key=lambda f: f.name)
            if not found:
                raise UserError(f"{p}: no .h5 or .mat SDF files in this folder")
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in SDF_SUFFIXES:
                raise UserError(f"{p}: not an SDF file (expected .h5 or .mat)")
            files.append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    if not files:
        raise UserError("no SDF files given")
    return files


def sdf_inputs(inputs: Sequence[str | Path]) -> tuple[list[Path], int]:
    """The SDF files of ``inputs`` (see :func:`collect_sdf_files`), each opened once so that a
    broken file fails before any output is written, and their total frame count."""
    from autodecoder.io.sequences import SequenceFile
    paths = collect_sdf_files(inputs)
    total = 0
    for p in paths:
        with SequenceFile(p) as seq:
            total += seq.n_frames
    return paths, total


def frames_bar(total: int, progress: bool):
    """The scripts' progress bar over frames."""
    from tqdm import tqdm
    return tqdm(total=total, unit="frame", disable=not progress, dynamic_ncols=True)


def each_sequence(inputs: Sequence[str | Path], out: str | Path | None, default_dir: str, progress: bool,
                  per_file_folder: bool = True):
    """Walk the SDF files of ``inputs`` with one progress bar over all their frames.

    Yields ``(path, seq, dest, bar)``: the file, its open
    :class:`autodecoder.io.SequenceFile`, its output folder (``out``, or
    ``default_dir`` next to the file; plus ``/<file stem>`` with
    ``per_file_folder``), and the bar, to ``update(1)`` per frame. Every file is
    checked before the first is yielded (see :func:`sdf_inputs`).
    """
    from autodecoder.io.sequences import SequenceFile
    paths, total = sdf_inputs(inputs)
    bar = frames_bar(total, progress)
    try:
        for p in paths:
            bar.set_description(p.name)
            dest = Path(out) if out is not None else p.parent / default_dir
            with SequenceFile(p) as seq:
                yield p, seq, dest / p.stem if per_file_folder else dest, bar
    finally:
        bar.close()
