"""Finding inputs: the one place that turns files and folders into sequences of frames.

* :func:`list_sequence_files` — the training files of a data folder (``train.py``, ``test.py``,
  ``evaluate.py reconstruction``): suffix by ``UseHDF5``, Python string order = code-table row.
* :func:`collect_sdf_files`, :func:`each_sdf_file` — the SDF files given to the port scripts (files,
  or folders of them).
* :func:`collect_sequences` — the sequences of ``evaluate.py compare``: SDF files, 4-D TIFF stacks
  and folders of per-frame 3-D TIFFs, two folder levels deep.
* :func:`find_sequences` — the sequences of the mask → SDF preparation (``voxvol_to_sdf``):
  CytoPacq folders, a folder of per-frame masks, 4-D stacks.

All of them describe a sequence with one :class:`SequenceSource`, and :func:`frame_volumes` reads
its frames in the SDF order ``(X, Y, Z)`` (TIFFs through :mod:`autodecoder.io.tiff`, which honours a
stack's ``TZ``/``ZT`` axis order).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import h5py
import numpy as np
from tqdm import tqdm

from autodecoder.experiment.errors import UserError
from autodecoder.io.sequences import SequenceFile, sequence_suffix
from autodecoder.io.tiff import TIFF_SUFFIXES, TiffInfo, read_stack_frame, read_tiff_volume, tiff_info

__all__ = ["SDF_SUFFIXES", "TIFF_SUFFIXES", "CYTOPACQ_MASKS", "KINDS", "Frame", "SequenceSource", "natural_key",
           "lexicographic_key", "frame_volumes", "is_whole_file", "sdf_source", "stack_source", "frames_source",
           "unique_names", "list_sequence_files", "collect_sdf_files", "warn_frame_order", "SEARCH_DEPTH",
           "collect_sequences", "find_sequences", "each_sdf_file"]

#: Suffixes of SDF sequence files (HDF5, MAT v5 or v7.3).
SDF_SUFFIXES = (".h5", ".hdf5", ".mat")
#: Where CytoPacq puts the time-lapse masks of a sequence folder (the default of :func:`find_sequences`).
CYTOPACQ_MASKS = "phantom/sim_data_afterTM/mask_t*.tif"
#: What a sequence on disk can be: one SDF file, one 4-D TIFF stack, one 3-D TIFF per frame.
KINDS = ("sdf", "tiff-stack", "tiff-frames")


# --------------------------------------------------------------------------
# the sequence type

@dataclass(frozen=True)
class Frame:
    """One frame on disk.

    Attributes:
        name: its name in messages and in preview file names (a file stem, or ``<stem>_tNNN``).
        path: the file holding it.
        index: the frame within ``path`` (an SDF file or a 4-D stack); None for a per-frame file.
        grid: its shape in SDF order ``(X, Y, Z)``, from the file's header.
    """

    name: str
    path: Path
    index: int | None
    grid: tuple[int, int, int]


@dataclass(frozen=True)
class SequenceSource:
    """One cell's time-lapse on disk.

    Attributes:
        name: unique name in its set (the output file stem of the preparation).
        kind: one of :data:`KINDS`.
        frames: the frames in time order.
        stack: for a ``"tiff-stack"``, the stack's :class:`~autodecoder.io.tiff.TiffInfo` (its axis order).
    """

    name: str
    kind: str
    frames: tuple[Frame, ...]
    stack: TiffInfo | None = None

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def grid(self) -> tuple[int, int, int]:
        """The first frame's shape ``(X, Y, Z)``."""
        return self.frames[0].grid if self.frames else (0, 0, 0)

    @property
    def paths(self) -> tuple[str, ...]:
        """The file (SDF file, stack), or the frame files in order."""
        return tuple(dict.fromkeys(str(f.path) for f in self.frames))


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key ordering numbers by value (``mask_t2`` before ``mask_t10``) and letters regardless of
    case; names equal under that order fall back to character order."""
    parts = _DIGITS.split(name)
    return tuple((0, int(p), p) if i % 2 else (1, p.lower(), "") for i, p in enumerate(parts)) + (name,)


def lexicographic_key(name: str) -> str:
    """MATLAB ``dir``'s order: character by character (``mask_t10`` before ``mask_t2``)."""
    return name


def frame_volumes(src: SequenceSource, frames: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(t, volume)`` for the frames ``frames`` (default: all) of ``src``, each ``(X, Y, Z)``:
    float32 SDF values for an SDF file, the file's labels or mask values for a TIFF."""
    ts = range(src.n_frames) if frames is None else frames
    if src.kind == "sdf":
        with SequenceFile(src.frames[0].path) as f:
            for t in ts:
                yield t, f.frame(t)
    elif src.kind == "tiff-stack":
        for t in ts:
            yield t, read_stack_frame(src.frames[t].path, t, src.stack)
    else:
        for t in ts:
            yield t, read_tiff_volume(src.frames[t].path)


def is_whole_file(src: SequenceSource) -> bool:
    """Whether reading one frame of ``src`` reads the whole file (a MAT v5 file)."""
    path = src.frames[0].path
    return src.kind == "sdf" and path.suffix.lower() == ".mat" and not h5py.is_hdf5(path)


# --------------------------------------------------------------------------
# building blocks

def sdf_source(path: Path, name: str) -> SequenceSource:
    """An SDF sequence file (opened to read its header; :class:`UserError` naming it if broken)."""
    path = Path(path)
    with SequenceFile(path) as f:
        n, grid = f.n_frames, tuple(f.grid_shape)
    return SequenceSource(name, "sdf", tuple(Frame(f"{path.stem}_t{t:03d}", path, t, grid) for t in range(n)))


def stack_source(info: TiffInfo, name: str) -> SequenceSource:
    """A 4-D TIFF stack (``info`` from :func:`~autodecoder.io.tiff.tiff_info`), frames named ``<stem>_tNNN``."""
    stem = info.path.stem
    return SequenceSource(name, "tiff-stack", tuple(Frame(f"{stem}_t{t:03d}", info.path, t, info.frame_grid)
                                                    for t in range(info.n_frames)), info)


def frames_source(infos: Sequence[TiffInfo], name: str) -> SequenceSource:
    """3-D TIFFs, one per frame, in the order given; frames named by their file stems."""
    return SequenceSource(name, "tiff-frames", tuple(Frame(i.path.stem, i.path, None, i.frame_grid) for i in infos))


def unique_names(sources: Sequence[SequenceSource]) -> list[SequenceSource]:
    """The sources, the second, third … of a repeated name renamed ``<name>#2``, ``<name>#3`` …"""
    seen: dict[str, int] = {}
    out = []
    for s in sources:
        k = seen.get(s.name, 0)
        seen[s.name] = k + 1
        out.append(s if k == 0 else replace(s, name=f"{s.name}#{k + 1}"))
    return out


# --------------------------------------------------------------------------
# training files, the ports' SDF files

def list_sequence_files(folder: str | Path, use_hdf5: bool) -> list[Path]:
    """The training files of ``folder`` (``.h5`` or ``.mat`` by ``UseHDF5``), in Python's string order:
    file ``i`` is row ``i`` of the code and angle tables."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: data folder not found")
    suffix = sequence_suffix(use_hdf5)
    files = sorted((p for p in folder.iterdir() if p.name.endswith(suffix) and p.is_file()), key=lambda p: p.name)
    if not files:
        other = sequence_suffix(not use_hdf5)
        hint = (f" (it has {other} files: set \"UseHDF5\": {str(not use_hdf5).lower()})"
                if any(p.name.endswith(other) for p in folder.iterdir()) else "")
        raise UserError(f"{folder}: no {suffix} data files in the data folder{hint}")
    return files


def collect_sdf_files(inputs: Sequence[str | Path]) -> list[Path]:
    """SDF files from files and folders (a folder's SDF files, in string order).

    Raises:
        UserError: a path that does not exist, a file that is not an SDF file, or no SDF file at all.
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


def warn_frame_order(name: str, files: Sequence[Path], order: str) -> list[Path]:
    """``files`` in ``order`` (``"natural"`` or ``"lexicographic"``), with a warning when the two orders differ."""
    natural = sorted(files, key=lambda p: natural_key(p.name))
    lexical = sorted(files, key=lambda p: lexicographic_key(p.name))
    if natural != lexical:
        i = next(k for k, (a, b) in enumerate(zip(natural, lexical)) if a != b)
        ours = ", ".join(p.stem for p in natural[max(i - 1, 0):i + 2])
        matlab = ", ".join(p.stem for p in lexical[max(i - 1, 0):i + 2])
        if order == "natural":
            warnings.warn(f"{name}: frames are taken in numeric order ({ours}, …); MATLAB's dir, and so the "
                          f"original script, takes them in character order ({matlab}, …); "
                          "pass --order lexicographic to reproduce that", stacklevel=4)
        else:
            warnings.warn(f"{name}: frames are taken in character order as MATLAB's dir does ({matlab}, …), "
                          f"not by frame number ({ours}, …)", stacklevel=4)
    return natural if order == "natural" else lexical


# --------------------------------------------------------------------------
# evaluate.py compare: SDF files, stacks and per-frame TIFFs, two folder levels deep

#: Folder depth searched below each folder given to :func:`collect_sequences`.
SEARCH_DEPTH = 2


def _mask_info(path: Path) -> TiffInfo:
    """The header of a mask TIFF of ``compare``: 3-D or 4-D, else :class:`UserError`."""
    info = tiff_info(path)
    if len(info.shape) not in (3, 4):
        raise UserError(f"{path}: expected a 3-D mask (Z, Y, X) or a 4-D stack (T, Z, Y, X), got shape {info.shape}")
    return info


def _collect_dir(folder: Path, root: Path, depth: int) -> list[SequenceSource]:
    """The sequences of ``folder`` and, ``depth`` levels deep, its sub-folders (names relative to ``root``)."""
    entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: natural_key(p.name))
    out: list[SequenceSource] = []
    frames: list[TiffInfo] = []
    for p in (e for e in entries if e.is_file()):
        if p.suffix.lower() in SDF_SUFFIXES:
            out.append(sdf_source(p, str(p.relative_to(root))))
        elif p.suffix.lower() in TIFF_SUFFIXES:
            info = _mask_info(p)
            if len(info.shape) == 4:
                out.append(stack_source(info, str(p.relative_to(root))))
            else:
                frames.append(info)
    if frames:
        grids = {i.frame_grid for i in frames}
        if len(grids) > 1:
            raise UserError(f"{folder}: its 3-D TIFFs (one per frame) have different shapes: "
                            + ", ".join("×".join(map(str, g)) for g in sorted(grids)))
        name = str(folder.relative_to(root)) if folder != root else folder.name
        out.append(frames_source(frames, name + "/"))
    if depth > 0:
        for p in (e for e in entries if e.is_dir()):
            out.extend(_collect_dir(p, root, depth - 1))
    return out


def _collect_path(p: Path, what: str) -> list[SequenceSource]:
    """The sequences of one path given to ``compare``."""
    if not p.exists():
        raise UserError(f"{p}: {what} file or folder not found")
    if p.is_dir():
        found = _collect_dir(p, p, SEARCH_DEPTH)
        if not found:
            raise UserError(f"{p}: no shapes found in the {what} folder (expected .h5/.mat SDF sequences "
                            "or .tif/.tiff masks)")
        return found
    if p.suffix.lower() in SDF_SUFFIXES:
        return [sdf_source(p, p.name)]
    if p.suffix.lower() in TIFF_SUFFIXES:
        info = _mask_info(p)
        return [stack_source(info, p.name) if len(info.shape) == 4 else frames_source([info], p.name)]
    raise UserError(f"{p}: not an SDF sequence (.h5, .mat) or a mask TIFF (.tif, .tiff)")


def collect_sequences(paths: Iterable[str | Path], what: str = "set") -> list[SequenceSource]:
    """The sequences of ``evaluate.py compare`` in ``paths`` (files and folders).

    A folder contributes its SDF files (one sequence each), its 4-D TIFF stacks (one sequence
    each) and its 3-D TIFFs (together one sequence named ``<folder>/``, one file per frame, in
    natural order: ``mask_t2`` before ``mask_t10``); sub-folders are searched the same way,
    :data:`SEARCH_DEPTH` levels deep. Names are unique in the result.

    Raises:
        UserError: a missing path, an unreadable file, or nothing found at all.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise UserError(f"no {what} files or folders given")
    return unique_names([s for p in paths for s in _collect_path(p, what)])


# --------------------------------------------------------------------------
# voxvol_to_sdf: CytoPacq folders, per-frame mask folders, 4-D stacks

def _frames_sequence(name: str, files: list[Path], order: str) -> SequenceSource:
    """Per-frame 3-D mask files as one sequence, in ``order``."""
    infos = {}
    for p in files:
        info = tiff_info(p)
        if len(info.shape) != 3:
            n = len(info.shape)
            what = f"a {n}D image" if n != 2 else "a 2D image (one slice)"
            raise UserError(f"{p}: the mask is not 3D: {what} of shape {info.shape}; each frame must be a 3D "
                            "volume (pages = slices)")
        infos[p] = info
    return frames_source([infos[p] for p in warn_frame_order(name, files, order)], name)


def _stack_sequence(path: Path, info: TiffInfo | None = None) -> SequenceSource:
    """A 4-D TIFF stack as one sequence named by its stem."""
    info = info or tiff_info(path)
    if len(info.shape) != 4:
        hint = " (a single 3D volume: put per-frame masks in a folder)" if len(info.shape) == 3 else ""
        raise UserError(f"{path}: a TIFF stack must be 4D (T, Z, Y, X); this one has shape {info.shape}{hint}")
    return stack_source(info, path.stem)


def _glob_files(folder: Path, pattern: str) -> list[Path]:
    """The files of ``folder`` matching ``pattern``."""
    return [p for p in folder.glob(pattern) if p.is_file()]


def _stacks_in(p: Path, masks: str) -> list[SequenceSource]:
    """The 4-D stacks directly in ``p`` (the last resort of :func:`find_sequences`)."""
    tiffs = sorted((f for f in p.iterdir() if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES), key=lambda f: f.name)
    if not tiffs:
        raise UserError(f"{p}: no masks: no file matches '{masks}' in this folder or its sub-folders, "
                        "and it holds no TIFF file")
    infos = [tiff_info(f) for f in tiffs]
    stacks = [_stack_sequence(i.path, i) for i in infos if len(i.shape) == 4]
    if not stacks:
        raise UserError(f"{p}: no masks matching '{masks}' in this folder or its sub-folders, and its "
                        f"{len(tiffs)} TIFF file(s) are not 4D stacks; for a folder of per-frame masks "
                        "pass --masks '*.tif'")
    return stacks


def find_sequences(input_path: str | Path, masks: str = CYTOPACQ_MASKS, order: str = "natural") -> list[SequenceSource]:
    """The sequences of the mask → SDF preparation under ``input_path``, frames in time order.

    * A ``.tif`` file: one 4-D stack (``TZYX``, or ``ZTYX`` when its metadata say so), one sequence.
    * A folder with files matching ``masks`` itself: one sequence (the folder's name).
    * Otherwise each sub-folder (in name order) with files matching ``masks`` (CytoPacq:
      ``<sequence>/phantom/sim_data_afterTM/mask_t*.tif``) is a sequence; when ``masks`` has a
      folder part that matches nothing, its file part alone (``mask_t*.tif``) is tried the same way.
    * Otherwise the 4-D TIFF stacks directly in the folder, one sequence each.

    ``order``: ``"natural"`` (by frame number) or ``"lexicographic"`` (MATLAB ``dir``).

    Raises:
        UserError: a missing input, no masks, a mask that is not 3-D, a stack that is not 4-D,
            an unreadable TIFF.
    """
    p = Path(input_path)
    if not p.exists():
        raise UserError(f"{p}: input folder not found")
    if p.is_file():
        if p.suffix.lower() not in TIFF_SUFFIXES:
            raise UserError(f"{p}: expected a folder of mask TIFFs or a 4D TIFF stack (.tif)")
        return [_stack_sequence(p)]
    patterns = [masks] + ([Path(masks).name] if Path(masks).name != masks else [])
    subs = sorted((d for d in p.iterdir() if d.is_dir()), key=lambda d: d.name)
    for pattern in patterns:
        own = _glob_files(p, pattern)
        if own:
            return [_frames_sequence(p.name, own, order)]
        found = [(d.name, files) for d in subs if (files := _glob_files(d, pattern))]
        if found:
            return [_frames_sequence(name, files, order) for name, files in found]
    return _stacks_in(p, masks)


def each_sdf_file(inputs: Sequence[str | Path], out: str | Path | None, default_dir: str, progress: bool,
                  per_file_folder: bool = True) -> Iterator[tuple[Path, SequenceFile, Path, tqdm]]:
    """Walk the SDF files of ``inputs`` (:func:`collect_sdf_files`) with one progress bar over all their frames.

    Yields ``(path, seq, dest, bar)``: the file, its open :class:`~autodecoder.io.sequences.SequenceFile`,
    its output folder (``out``, or ``default_dir`` next to the file; plus ``/<file stem>`` with
    ``per_file_folder``), and the bar, to ``update(1)`` per frame. Every file is opened once before the
    first is yielded, so that a broken file fails before any output is written.
    """
    paths = collect_sdf_files(inputs)
    total = 0
    for p in paths:
        with SequenceFile(p) as seq:
            total += seq.n_frames
    bar = tqdm(total=total, unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        for p in paths:
            bar.set_description(p.name)
            dest = Path(out) if out is not None else p.parent / default_dir
            with SequenceFile(p) as seq:
                yield p, seq, dest / p.stem if per_file_folder else dest, bar
    finally:
        bar.close()
