"""Microscopy image datasets as they lie on disk, read frame by frame with their masks, if any: the
inputs of ``evaluate.py images`` (each side), of ``realism.py train|apply`` and of the segmentation
benchmark.

A dataset is one of:

* a folder of 3-D TIFF/OME-TIFF frames (one file per frame, natural order: ``t2`` before ``t10``);
* a 4-D stack ``(T, Z, Y, X)`` (a ``.tif`` file, or a folder holding exactly one); an OME-TIFF
  ``x.ome.tif`` brings its masks along when ``x_labels.ome.tif`` lies next to it;
* a Cell Tracking Challenge dataset root (``01/``, ``01_GT/`` …; every sequence, in order) or a
  sequence folder ``01/`` whose sibling ``01_GT/`` exists: images ``t000.tif …``, masks from
  ``01_GT/SEG/man_seg000.tif …`` where they exist, else from ``01_GT/TRA/man_track000.tif …``.

``--real-masks`` / ``--synthetic-masks`` take a folder of 3-D mask frames or a 4-D mask stack
and override what was found. Frames are read one at a time, as ``(Z, Y, X)`` arrays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autodecoder.experiment.errors import UserError
from autodecoder.io.discovery import natural_key
from autodecoder.io.tiff import TIFF_SUFFIXES, TiffInfo, read_stack_frame, read_tiff_volume, tiff_info
from autodecoder.microscopy.ome import labels_path

__all__ = ["FrameRef", "ImageSet", "collect_images", "read_frame", "read_pair"]

_SEQUENCE = re.compile(r"^\d{2,}$")
_NUMBER = {"image": re.compile(r"^t(\d+)\.tiff?$", re.I), "seg": re.compile(r"^man_seg(\d+)\.tiff?$", re.I),
           "tra": re.compile(r"^man_track(\d+)\.tiff?$", re.I)}


@dataclass(frozen=True)
class FrameRef:
    """One 3-D frame on disk: ``path``, and ``index`` within a 4-D stack (None: the whole file)."""

    path: Path
    index: int | None = None
    info: TiffInfo | None = None

    @property
    def label(self) -> str:
        """The frame's name in tables: the file name, ``[t]`` for a frame of a stack."""
        return self.path.name + (f"[{self.index}]" if self.index is not None else "")


@dataclass
class ImageSet:
    """One side of the comparison: its frames in time order and their masks (None: no masks)."""

    source: Path
    frames: list[FrameRef]
    masks: list[FrameRef | None]
    notes: list[str] = field(default_factory=list)

    @property
    def has_masks(self) -> bool:
        return any(m is not None for m in self.masks)


def _tiffs(folder: Path, pattern: re.Pattern | None = None) -> list[Path]:
    """TIFF files directly in ``folder`` (matching ``pattern``), in natural order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES
             and (pattern is None or pattern.match(p.name))]
    return sorted(files, key=lambda p: natural_key(p.name))


def _frames_of(path: Path, what: str) -> list[FrameRef]:
    """The frames of a 4-D stack file, a 3-D file, or a folder of 3-D files / one 4-D stack."""
    if path.is_file():
        info = tiff_info(path)
        if len(info.shape) == 4:
            return [FrameRef(path, t, info) for t in range(info.n_frames)]
        if len(info.shape) == 3:
            return [FrameRef(path, None, info)]
        raise UserError(f"{path}: {what}: expected a 3-D frame (Z, Y, X) or a 4-D stack (T, Z, Y, X), "
                        f"got shape {info.shape}")
    files = _tiffs(path)
    if not files:
        raise UserError(f"{path}: {what}: no TIFF files in this folder (expected 3-D frames, a 4-D stack "
                        "or a CTC dataset)")
    if len(files) == 1:
        return _frames_of(files[0], what)
    refs = [r for f in files for r in _frames_of(f, what)]
    if any(r.index is not None for r in refs):
        raise UserError(f"{path}: {what}: a folder holds either 3-D frames or one 4-D stack, not several stacks")
    return refs


def _ctc_masks(gt: Path, numbers: list[int], notes: list[str]) -> list[FrameRef | None]:
    """The masks of the frames ``numbers`` in the CTC ground-truth folder ``gt``: SEG, else TRA."""
    def found(sub: str, kind: str) -> dict[int, Path]:
        folder = gt / sub
        return {int(_NUMBER[kind].match(p.name).group(1)): p
                for p in (_tiffs(folder, _NUMBER[kind]) if folder.is_dir() else [])}

    seg, tra = found("SEG", "seg"), found("TRA", "tra")
    if seg:
        if len(set(numbers) - set(seg)):
            notes.append(f"`{gt}/SEG` annotates {len(set(numbers) & set(seg))} of {len(numbers)} frames; "
                         "the others have no masks")
        return [FrameRef(seg[n]) if n in seg else None for n in numbers]
    if tra:
        notes.append(f"masks from `{gt}/TRA` (no 3-D `SEG` masks): in real CTC data these are tracking "
                     "markers, not full cell masks")
        return [FrameRef(tra[n]) if n in tra else None for n in numbers]
    notes.append(f"`{gt}` holds no SEG or TRA masks")
    return [None] * len(numbers)


def _ctc_sequence(folder: Path, notes: list[str]) -> tuple[list[FrameRef], list[FrameRef | None]]:
    """Images ``tNNN.tif`` of a CTC sequence folder and their masks from the ``_GT`` sibling."""
    files = _tiffs(folder, _NUMBER["image"])
    if not files:
        raise UserError(f"{folder}: a CTC sequence folder without images t000.tif …")
    numbers = [int(_NUMBER["image"].match(p.name).group(1)) for p in files]
    gt = folder.with_name(folder.name + "_GT")
    masks = _ctc_masks(gt, numbers, notes) if gt.is_dir() else [None] * len(files)
    return [FrameRef(p) for p in files], masks


def ctc_sequences(path: Path) -> list[Path]:
    """The CTC sequence folders ``path`` stands for: itself, its numbered sub-folders, or none."""
    if _SEQUENCE.match(path.name) and path.with_name(path.name + "_GT").is_dir():
        return [path]
    subs = sorted((d for d in path.iterdir() if d.is_dir() and _SEQUENCE.match(d.name)), key=lambda d: d.name)
    return [d for d in subs if _tiffs(d, _NUMBER["image"])]


def _ome_masks(path: Path, frames: list[FrameRef], notes: list[str]) -> list[FrameRef | None]:
    """The masks of an OME-TIFF stack from its ``_labels.ome.tif`` sibling, when there is one."""
    if not path.name.lower().endswith((".ome.tif", ".ome.tiff")) or not labels_path(path).is_file():
        return [None] * len(frames)
    notes.append(f"masks from `{labels_path(path).name}`")
    return list(_frames_of(labels_path(path), "masks"))


def collect_images(path: str | Path, masks: str | Path | None = None, what: str = "images") -> ImageSet:
    """The frames of one side and their masks (see the module docstring).

    Raises:
        UserError: a missing path, no TIFF frames, unreadable files, or masks whose count differs
            from the frames'.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: {what} not found (expected a folder of 3-D TIFF frames, a 4-D TIFF stack "
                        "or a CTC dataset)")
    notes: list[str] = []
    sequences = ctc_sequences(path) if path.is_dir() else []
    if sequences:
        pairs = [_ctc_sequence(s, notes) for s in sequences]
        frames = [f for fr, _ in pairs for f in fr]
        found = [m for _, ms in pairs for m in ms]
        if len(sequences) > 1:
            notes.append(f"CTC sequences {', '.join(s.name for s in sequences)}, one after the other")
    else:
        frames = _frames_of(path, what)
        single = path if path.is_file() else frames[0].path
        found = _ome_masks(single, frames, notes) if frames[0].index is not None else [None] * len(frames)
    if masks is not None:
        mask_path = Path(masks)
        if not mask_path.exists():
            raise UserError(f"{mask_path}: masks of the {what} not found (expected a folder of 3-D mask "
                            "TIFFs or a 4-D mask stack)")
        found = list(_frames_of(mask_path, f"masks of the {what}"))
        notes.append(f"masks from `{mask_path}`")
    if len(found) != len(frames):
        raise UserError(f"{masks or path}: {len(found)} mask frames for {len(frames)} {what} frames; "
                        "expected one mask frame per image frame")
    return ImageSet(path, frames, found, notes)


def read_frame(ref: FrameRef) -> np.ndarray:
    """One frame as a ``(Z, Y, X)`` array of the file's dtype."""
    info = ref.info or tiff_info(ref.path)
    if ref.index is not None:
        vol = read_stack_frame(ref.path, ref.index, info)
    elif len(info.shape) != 3:
        raise UserError(f"{ref.path}: expected a 3-D frame (Z, Y, X), got shape {info.shape}")
    else:
        vol = read_tiff_volume(ref.path)
    return np.ascontiguousarray(vol.transpose(2, 0, 1))  # the readers give (Y, X, Z): back to file order


def read_pair(images: ImageSet, t: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Frame ``t`` of ``images`` and its masks (None without), both ``(Z, Y, X)``."""
    image = read_frame(images.frames[t])
    ref = images.masks[t]
    if ref is None:
        return image, None
    mask = read_frame(ref)
    if mask.shape != image.shape:
        raise UserError(f"{ref.label}: masks of shape {mask.shape} (Z, Y, X) for the image "
                        f"{images.frames[t].label} of shape {image.shape}; expected the same shape")
    return image, mask
