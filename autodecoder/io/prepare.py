"""Preparing training data from voxel masks: the port of ``voxvol_to_sdf.m`` (docs/method.md §6).

For every sequence found by :func:`autodecoder.io.discovery.find_sequences`, and every frame in it
(the steps and defaults of the original, each an :class:`Options` field):

1. read the mask TIFF in MATLAB's axis order ``(rows, columns, slices)``, which is the SDF's
   ``(X, Y, Z)`` (tifffile's ``(pages, rows, columns)`` transposed with ``(1, 2, 0)``);
2. resize by ``scale`` (0.65) with nearest neighbour, as MATLAB's ``imresize3`` does it (output
   size ``ceil(scale·size)``, centre-aligned sampling);
3. pad ``pad`` (150) voxels of zeros on every side;
4. crop a ``crop``³ (256³) box ``[c − crop/2, c + crop/2 − 1]`` around the rounded centroid ``c``
   of the cell's label (MATLAB ``round`` and ``regionprops`` conventions), shifted back inside
   the volume where it would leave it (the original tests the slice axis against the column
   count, a bug fixed here);
5. binarise (label > 0, or == ``label``) and keep the largest connected component
   (26-connectivity), or every component (``components="all"``);
6. SDF = min(outer distance, ``clamp`` (32)) − inner distance, divided by its largest absolute
   value; an MIP preview PNG of ``sdf <= 0``.

The sequence becomes ``<output>/<sequence>.h5`` (``sdf_vid``, one frame per chunk, gzip 9) or
``.mat``; previews go to ``<output>/preview/<sequence>/<frame>.png``. A sequence with an empty
frame, a frame without the cell's label, or a frame whose crop would cut the cell is skipped as a
whole (skipping one frame would shift the time axis); the run goes on and lists the skipped
sequences at the end. The command line is ``matlab_ports/voxvol_to_sdf.py``;
``matlab_ports/README.md`` documents every place where MATLAB and Python differ.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
from tqdm import tqdm

from autodecoder import __version__
from autodecoder.experiment.errors import UserError
from autodecoder.io.discovery import CYTOPACQ_MASKS, SequenceSource, find_sequences, frame_volumes
from autodecoder.io.mask_sdf import CONNECTIVITY, mask_to_sdf, select_components
from autodecoder.io.matlab_compat import centroid_rcs, imresize3, matlab_round, regionprops_centroid
from autodecoder.io.pictures import mip, save_image
from autodecoder.io.sequences import SequenceWriter

__all__ = ["CYTOPACQ_MASKS", "PREVIEW_DIR", "Options", "SkipSequence", "FrameResult", "Result", "prepare_frame",
           "convert_sequence", "voxvol_to_sdf"]

PREVIEW_DIR = "preview"


@dataclass(frozen=True)
class Options:
    """The settings of a run; the defaults are the original script's values.

    Attributes:
        scale: resize factor (nearest neighbour, MATLAB ``imresize3`` sampling); 1 = no resize.
        pad: voxels of zeros added on every side before cropping.
        crop: edge of the cubic crop box, or None: no crop (the padded volume is kept whole).
        clamp: outer distance clamp in voxels (None: no clamp).
        components: ``"largest"`` (the original) or ``"all"`` (a dividing cell keeps both daughters).
        connectivity: 26 (MATLAB's default in 3D), 18 or 6.
        label: the cell of interest in label images: the crop centres on it and only it is
            foreground. None: the original's behaviour (centre on label 1, every non-zero voxel is
            foreground; a binary mask whose only non-zero value is not 1, e.g. 0/255, is centred on
            that value).
        fmt: ``"h5"`` or ``"mat"``.
        compression: gzip level of the HDF5 output (0–9).
        masks: glob of a sequence's mask files, relative to its folder.
        order: ``"natural"`` (by frame number) or ``"lexicographic"`` (MATLAB ``dir``).
        previews: write the MIP preview PNGs.
    """

    scale: float = 0.65
    pad: int = 150
    crop: int | None = 256
    clamp: float | None = 32.0
    components: str = "largest"
    connectivity: int = 26
    label: int | None = None
    fmt: str = "h5"
    compression: int = 9
    masks: str = CYTOPACQ_MASKS
    order: str = "natural"
    previews: bool = True

    def check(self) -> "Options":
        """Raise :class:`UserError` for a value out of range; return self."""
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise UserError(f"--scale must be a positive number, got {self.scale}")
        if self.pad < 0:
            raise UserError(f"--pad must be >= 0 voxels, got {self.pad}")
        if self.crop is not None and self.crop < 2:
            raise UserError(f"--crop must be at least 2 voxels (or 'none'), got {self.crop}")
        if self.clamp is not None and not (np.isfinite(self.clamp) and self.clamp > 0):
            raise UserError(f"--clamp must be a positive number of voxels (or 'none'), got {self.clamp}")
        if self.components not in ("largest", "all"):
            raise UserError(f"--components must be 'largest' or 'all', got {self.components!r}")
        if self.connectivity not in CONNECTIVITY:
            raise UserError(f"--connectivity must be 6, 18 or 26, got {self.connectivity}")
        if self.label is not None and self.label < 1:
            raise UserError(f"--label must be a positive label value, got {self.label}")
        if self.fmt not in ("h5", "mat"):
            raise UserError(f"--format must be 'h5' or 'mat', got {self.fmt!r}")
        if not 0 <= self.compression <= 9:
            raise UserError(f"--compression must be 0..9, got {self.compression}")
        if self.order not in ("natural", "lexicographic"):
            raise UserError(f"--order must be 'natural' or 'lexicographic', got {self.order!r}")
        return self


class SkipSequence(Exception):
    """A sequence that cannot be converted as a whole; the message says which frame and why."""


# --------------------------------------------------------------------------
# one frame

@dataclass
class FrameResult:
    """A prepared frame.

    Attributes:
        mask: bool ``(X, Y, Z)``, the cell in the output grid.
        origin: 0-based corner of the output grid in the resized, padded
            volume (MATLAB axis order); output voxel ``v`` is resized voxel
            ``v + origin - pad``, i.e. input voxel ``v + origin - pad`` at scale 1.
        resized_shape: shape of the frame after resizing, before padding.
        dropped: foreground voxels of the components left out (``components="largest"``).
    """

    mask: np.ndarray
    origin: tuple[int, int, int]
    resized_shape: tuple[int, int, int]
    dropped: int = 0


def _cell_and_foreground(vol: np.ndarray, label: int | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The cell of interest (centring) and the foreground (binarisation) of a label volume, bool each."""
    if label is not None:
        cell = vol == label
        if not cell.any():
            raise SkipSequence(f"{where} has no voxel of label {label} (an empty frame)")
        return cell, cell
    fg = vol > 0
    if not fg.any():
        raise SkipSequence(f"{where} is empty (no voxel > 0)")
    cell = vol == 1
    if not cell.any():
        values = np.unique(vol[fg])
        if len(values) != 1:
            shown = ", ".join(str(v) for v in values[:6]) + (", …" if len(values) > 6 else "")
            raise SkipSequence(f"{where} has no voxel of label 1 (labels present: {shown}); "
                               "pass --label to choose the cell")
        cell = fg  # a binary mask stored as 0/255 (or another single value)
    return cell, fg


def _crop_box(cell: np.ndarray, shape: tuple[int, ...], options: Options,
              where: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """0-based origin and size of the output box in the padded volume (MATLAB's crop, step 4)."""
    pad = int(options.pad)
    padded = tuple(n + 2 * pad for n in shape)
    if options.crop is None:
        return (0, 0, 0), padded
    n_crop = int(options.crop)
    if any(n_crop > n for n in padded):
        raise UserError(f"{where}: the {n_crop}³ crop does not fit the padded volume "
                        f"{'×'.join(map(str, padded))} (resized {'×'.join(map(str, shape))} + 2×{pad}); "
                        "lower --crop or raise --pad")
    x, y, z = regionprops_centroid(cell)  # 1-based (column, row, slice), as MATLAB gives it
    centre = matlab_round(centroid_rcs((x + pad, y + pad, z + pad)))  # 1-based (row, column, slice)
    origin = []
    for c, n in zip(centre.tolist(), padded):
        lo = c - n_crop // 2
        hi = lo + n_crop - 1
        if lo < 1:
            hi += 1 - lo
            lo = 1
        if hi > n:  # the original compares the slice axis with the column count here: fixed
            lo -= hi - n
            hi = n
        origin.append(lo - 1)
    return tuple(origin), (n_crop,) * 3


def _check_inside(kept: np.ndarray, origin: tuple[int, ...], size: tuple[int, ...], options: Options,
                  where: str) -> None:
    """Raise :class:`SkipSequence` when the box would cut the kept components."""
    pad = int(options.pad)
    for ax, name in enumerate(("rows (X)", "columns (Y)", "slices (Z)")):
        other = tuple(a for a in range(3) if a != ax)
        occupied = np.flatnonzero(kept.any(axis=other))
        first, last = int(occupied[0]) + pad, int(occupied[-1]) + pad
        if first < origin[ax] or last > origin[ax] + size[ax] - 1:
            raise SkipSequence(f"{where}: the {size[ax]}-voxel crop would cut the cell along the {name}: it spans "
                               f"{last - first + 1} voxels there (after resizing by {options.scale:g})")


def _place(kept: np.ndarray, origin: tuple[int, ...], size: tuple[int, ...], pad: int) -> np.ndarray:
    """The box ``[origin, origin + size)`` of ``kept`` padded by ``pad`` zeros, without padding it."""
    out = np.zeros(size, dtype=bool)
    src, dst = [], []
    for o, s, n in zip(origin, size, kept.shape):
        lo = max(o - pad, 0)
        hi = min(o - pad + s, n)
        src.append(slice(lo, hi))
        dst.append(slice(lo - (o - pad), hi - (o - pad)))
    out[tuple(dst)] = kept[tuple(src)]
    return out


def prepare_frame(volume: np.ndarray, options: Options, where: str = "frame") -> FrameResult:
    """Resize, pad, crop around the cell, binarise and clean one frame (steps 2–5 of the module docstring).

    Args:
        volume: label image in MATLAB order ``(rows, columns, slices)`` = ``(X, Y, Z)``.
        options: the run's settings.
        where: the frame's name for messages.

    Raises:
        SkipSequence: empty frame, no voxel of the cell's label, or a crop that would cut the cell.
        UserError: the crop box is larger than the padded volume.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise UserError(f"{where}: the mask is not 3D (shape {vol.shape})")
    if np.issubdtype(vol.dtype, np.floating) and not np.isfinite(vol).all():
        raise UserError(f"{where}: the mask holds NaN or infinite values; a mask holds labels (0 = background)")
    if options.scale != 1.0:
        vol = imresize3(vol, scale=options.scale, method="nearest")
    cell, fg = _cell_and_foreground(vol, options.label, where)
    kept = select_components(fg, options.connectivity, options.components)
    origin, size = _crop_box(cell, vol.shape, options, where)
    _check_inside(kept, origin, size, options, where)
    out = _place(kept, origin, size, int(options.pad))
    return FrameResult(out, tuple(int(v) for v in origin), tuple(int(n) for n in vol.shape),
                       int(fg.sum() - kept.sum()))


# --------------------------------------------------------------------------
# one sequence, a whole run

@dataclass
class Result:
    """What a run did: the files written and the sequences skipped, ``(name, reason)``."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _provenance(src: SequenceSource, options: Options) -> dict:
    """The HDF5 attributes (MAT variables) recording where a prepared sequence came from."""
    opts = {k: ("none" if v is None else v) for k, v in asdict(options).items()}
    opts["previews"] = int(opts["previews"])
    return {
        "generator": "matlab_ports.voxvol_to_sdf", "autodecoder_version": __version__,
        "source": str(src.frames[0].path.resolve().parent if src.frames else ""),
        "source_frames": "\n".join(f.name for f in src.frames),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **{f"option_{k}": v for k, v in opts.items()},
    }


def _write_frames(src: SequenceSource, path: Path, options: Options, bar=None) -> tuple[SequenceWriter, dict, list]:
    """Prepare and write every frame of ``src`` to ``path``; returns the open writer, the extra
    attributes (``crop_origin``, ``resized_shape``) and the previews ``(frame name, MIP)``."""
    writer: SequenceWriter | None = None
    previews: list[tuple[str, np.ndarray]] = []
    origins: list[tuple[int, int, int]] = []
    dropped: list[int] = []
    first_shape = None
    try:
        for (_, volume), fr in zip(frame_volumes(src), src.frames):
            where = f"{fr.path} (frame {fr.name})"
            res = prepare_frame(volume, options, where)
            dropped.append(res.dropped)
            try:
                sdf = mask_to_sdf(res.mask, clamp=options.clamp)
            except ValueError as e:
                raise SkipSequence(f"{where}: {e}") from None
            if writer is None:
                first_shape = res.resized_shape
                writer = SequenceWriter(path, src.n_frames, sdf.shape, options.compression, _provenance(src, options))
            elif sdf.shape != writer.grid_shape:
                raise SkipSequence(f"{where} gives a {sdf.shape} grid but the first frame gave {writer.grid_shape} "
                                   f"(frames of different sizes need --crop)")
            writer.write_frame(len(origins), sdf)
            origins.append(res.origin)
            if options.previews:
                previews.append((fr.name, mip(sdf <= 0)))
            if bar is not None:
                bar.update(1)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise SkipSequence("no frames")
    _warn_dropped(src, dropped)
    return writer, {"crop_origin": np.asarray(origins, dtype=np.int64),
                    "resized_shape": np.asarray(first_shape, dtype=np.int64)}, previews


def _warn_dropped(src: SequenceSource, dropped: list[int]) -> None:
    """One line when keeping the largest component dropped others (e.g. a dividing cell's second daughter)."""
    frames = [i for i, n in enumerate(dropped) if n]
    if frames:
        warnings.warn(f"{src.name}: kept the largest connected component in {len(frames)} frame(s) (first {frames[0]}; "
                      f"up to {max(dropped)} voxels of other components left out); pass --components all to keep "
                      "every component (e.g. both daughters of a dividing cell)", stacklevel=3)


def convert_sequence(src: SequenceSource, output: Path, options: Options, bar=None) -> Path:
    """Convert one sequence to ``<output>/<name>.<fmt>`` (and its previews); returns the SDF file.

    Frames are written as they are computed (HDF5); the file appears under
    its name only when every frame is done. Raises :class:`SkipSequence`
    (leaving no output) if a frame cannot be converted.
    """
    output = Path(output)
    path = output / f"{src.name}.{options.fmt}"
    writer, extra, previews = _write_frames(src, path, options, bar)
    try:
        writer.attrs.update(extra)  # MAT: stored with the provenance at close
        writer.close()
    except BaseException:
        writer.abort()
        raise
    if options.fmt == "h5":
        with h5py.File(path, "a") as f:
            for k, v in extra.items():
                f.attrs[k] = v
    for name, img in previews:
        save_image(img, output / PREVIEW_DIR / src.name / f"{name}.png")
    return path


def _check_crop_fits(seqs: list[SequenceSource], options: Options) -> None:
    """Fail before any work if the crop box cannot fit some frame's padded volume (sizes from the headers)."""
    if options.crop is None:
        return
    for s in seqs:
        for fr in s.frames:
            padded = tuple(int(math.ceil(options.scale * n)) + 2 * options.pad for n in fr.grid)
            if any(options.crop > n for n in padded):
                raise UserError(f"{fr.path}: the {options.crop}³ crop does not fit this frame: "
                                f"{'×'.join(map(str, fr.grid))} voxels, resized by {options.scale:g} and padded "
                                f"by {options.pad} give {'×'.join(map(str, padded))}; lower --crop or raise --pad")


def _report(result: Result, n: int, out: Path, options: Options, say: Callable[[str], None]) -> None:
    """The run's last lines: what was written and what was skipped, and why."""
    say(f"voxvol_to_sdf: {len(result.written)} of {n} sequence(s) written to {out}"
        + (f" (previews in {out / PREVIEW_DIR})" if options.previews and result.written else ""))
    if result.skipped:
        say(f"skipped {len(result.skipped)} of {n} sequence(s), kept out of the training set as a whole:")
        for name, why in result.skipped:
            say(f"  {name}: {why}")


def voxvol_to_sdf(input_path: str | Path, output: str | Path, options: Options = Options(),
                  progress: bool = True, log: Callable[[str], None] | None = None) -> Result:
    """Convert every sequence found under ``input_path`` (see
    :func:`autodecoder.io.discovery.find_sequences`) into ``output``.

    Sequences that cannot be converted are skipped as a whole and reported
    (in the result, and through ``log``); the others are converted.

    Returns:
        :class:`Result` with the SDF files written and the skipped sequences.

    Raises:
        UserError: bad options or inputs (missing folder, no masks, a mask that is not 3D, …).
    """
    options.check()
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: the output must be a folder")
    seqs = find_sequences(input_path, options.masks, options.order)
    _check_crop_fits(seqs, options)
    say = log if log is not None else tqdm.write
    result = Result()
    bar = tqdm(total=sum(s.n_frames for s in seqs), unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        for s in seqs:
            bar.set_description(s.name)
            done_before = bar.n
            try:
                result.written.append(convert_sequence(s, out, options, bar))
            except SkipSequence as e:
                result.skipped.append((s.name, str(e)))
                bar.update(s.n_frames - (bar.n - done_before))
                say(f"skipped {s.name}: {e}")
    finally:
        bar.close()
    _report(result, len(seqs), out, options, say)
    return result
