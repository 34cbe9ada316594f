#!/usr/bin/env python
"""Port of ``voxvol_to_sdf.m``: time-lapse voxel masks → training SDF sequences (SPEC §6).

For every sequence, and every frame in it (the steps and defaults of the
original, each an option):

1. read the mask TIFF; tifffile gives ``(pages, rows, columns)``, MATLAB
   ``(rows, columns, pages)``: the port transposes with ``(1, 2, 0)`` and then
   works in MATLAB's axis order, which is the SDF's ``(X, Y, Z)``;
2. resize by ``scale`` (0.65) with nearest neighbour, as MATLAB's ``imresize3``
   does it (output size ``ceil(scale·size)``, centre-aligned sampling);
3. pad ``pad`` (150) voxels of zeros on every side;
4. crop a ``crop``³ (256³) box ``[c − crop/2, c + crop/2 − 1]`` around the
   rounded centroid ``c`` of the cell's label (MATLAB ``round`` and
   ``regionprops`` conventions), shifted back inside the volume where it
   would leave it (the original tests the slice axis against the column
   count, a bug fixed here);
5. binarise (label > 0, or == ``--label``) and keep the largest connected
   component (26-connectivity), or every component (``--components all``);
6. SDF = min(outer distance, ``clamp`` (32)) − inner distance, divided by its
   largest absolute value; an MIP preview PNG of ``sdf <= 0``.

The sequence becomes ``<output>/<sequence>.h5`` (``sdf_vid``, one frame per
chunk, gzip 9) or ``.mat``; previews go to
``<output>/preview/<sequence>/<frame>.png``. A sequence with an empty frame,
a frame without the cell's label, or a frame whose crop would cut the cell
is skipped as a whole (skipping one frame would shift the time axis); the
run goes on and lists the skipped sequences at the end (exit status 1).

``matlab_ports/README.md`` documents every place where MATLAB and Python
differ and how this port follows MATLAB.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from typing import Callable, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from autodecoder import __version__
from autodecoder.experiment.errors import UserError  # noqa: E402
from autodecoder.io.exports import tiff_to_frame  # noqa: E402
from autodecoder.io.mask_sdf import CONNECTIVITY, mask_to_sdf, select_components  # noqa: E402
from matlab_ports.common import Parser, optional_float, optional_int, run_guarded  # noqa: E402
from matlab_ports.matlab_compat import (centroid_rcs, imresize3, lexicographic_key, matlab_round,  # noqa: E402
                                        natural_key, regionprops_centroid)

__all__ = ["CYTOPACQ_MASKS", "Options", "SequenceSource", "FrameSource", "SkipSequence", "FrameResult",
           "Result", "find_sequences", "prepare_frame", "convert_sequence", "voxvol_to_sdf",
           "demo_options", "convert_demo_masks", "main"]

#: Where CytoPacq puts the time-lapse masks of a sequence folder.
CYTOPACQ_MASKS = "phantom/sim_data_afterTM/mask_t*.tif"
TIFF_SUFFIXES = (".tif", ".tiff")
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
# inputs

def _tiff_info(path: Path) -> tuple[tuple[int, ...], str]:
    """Shape and axes of the first image series of a TIFF file, without reading the pixels."""
    import tifffile
    try:
        with tifffile.TiffFile(path) as tif:
            s = tif.series[0]
            return tuple(int(n) for n in s.shape), str(s.axes)
    except Exception as e:  # tifffile raises several types for broken or non-TIFF files
        raise UserError(f"{path}: cannot read as a TIFF file ({e})") from None


def _squeeze(shape: tuple[int, ...], axes: str) -> tuple[tuple[int, ...], str]:
    keep = [i for i, n in enumerate(shape) if n != 1]
    return tuple(shape[i] for i in keep), "".join(axes[i] for i in keep) if len(axes) == len(shape) else ""


@dataclass
class FrameSource:
    """One frame of a sequence: a per-frame mask file, or frame ``index`` of a 4D stack.

    Attributes:
        name: the frame's name in messages and its preview's file stem.
        path: the TIFF file.
        index: the frame in a 4D stack, None for a per-frame file.
        stack_tz: for a stack, ``(T, Z)`` and whether the file stores Z outermost.
        shape: the frame's shape in MATLAB order ``(rows, columns, slices)``, from the file's header.
    """

    name: str
    path: Path
    index: int | None = None
    stack_tz: tuple[int, int, bool] | None = None
    shape: tuple[int, int, int] | None = None

    def read(self) -> np.ndarray:
        """The frame in MATLAB order ``(rows, columns, slices)`` = SDF ``(X, Y, Z)``, the file's dtype."""
        import tifffile
        try:
            if self.index is None:
                vol = np.asarray(tifffile.imread(self.path, series=0))
                vol = vol.reshape([n for n in vol.shape if n != 1]) if vol.ndim > 3 else vol
            else:
                vol = self._read_stack_frame(tifffile)
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{self.path}: cannot read as a TIFF file ({e})") from None
        if vol.ndim != 3:
            raise UserError(f"{self.path}: the mask is not 3D (shape {vol.shape})")
        return tiff_to_frame(vol)

    def _read_stack_frame(self, tifffile) -> np.ndarray:
        n_t, n_z, z_outer = self.stack_tz  # type: ignore[misc]
        t = int(self.index)  # type: ignore[arg-type]
        with tifffile.TiffFile(self.path) as tif:
            s = tif.series[0]
            pages = [z * n_t + t for z in range(n_z)] if z_outer else [t * n_z + z for z in range(n_z)]
            if len(s.pages) == n_t * n_z and all(p is not None and len(p.shape) == 2 for p in s.pages[:1]):
                vol = tif.asarray(key=pages, series=0)
                return np.asarray(vol).reshape(n_z, *vol.shape[-2:])
            data = np.asarray(s.asarray())  # pages that are not single planes: read the whole stack
            data = data.reshape([n for n in data.shape if n != 1])
            return data[:, t] if z_outer else data[t]


@dataclass
class SequenceSource:
    """One sequence: its name (the output file stem) and its frames in time order."""

    name: str
    frames: list[FrameSource] = field(default_factory=list)


def _per_frame_sequence(name: str, files: list[Path], order: str) -> SequenceSource:
    shapes = {}
    for p in files:
        shape, axes = _squeeze(*_tiff_info(p))
        if len(shape) != 3:
            what = f"a {len(shape)}D image" if len(shape) != 2 else "a 2D image (one slice)"
            raise UserError(f"{p}: the mask is not 3D: {what} of shape {shape}; each frame must be a 3D "
                            "volume (pages = slices)")
        shapes[p] = (shape[1], shape[2], shape[0])
    natural = sorted(files, key=lambda p: natural_key(p.name))
    lexical = sorted(files, key=lambda p: lexicographic_key(p.name))
    if natural != lexical:
        i = next(k for k, (a, b) in enumerate(zip(natural, lexical)) if a != b)
        msg_ours = ", ".join(p.stem for p in natural[max(i - 1, 0):i + 2])
        msg_matlab = ", ".join(p.stem for p in lexical[max(i - 1, 0):i + 2])
        if order == "natural":
            warnings.warn(f"{name}: frames are taken in numeric order ({msg_ours}, …); MATLAB's dir, and so the "
                          f"original script, takes them in character order ({msg_matlab}, …); "
                          "pass --order lexicographic to reproduce that", stacklevel=3)
        else:
            warnings.warn(f"{name}: frames are taken in character order as MATLAB's dir does ({msg_matlab}, …), "
                          f"not by frame number ({msg_ours}, …)", stacklevel=3)
    chosen = natural if order == "natural" else lexical
    return SequenceSource(name, [FrameSource(p.stem, p, shape=shapes[p]) for p in chosen])


def _stack_sequence(path: Path) -> SequenceSource:
    shape, axes = _squeeze(*_tiff_info(path))
    if len(shape) != 4:
        hint = (" (a single 3D volume: put per-frame masks in a folder)" if len(shape) == 3 else "")
        raise UserError(f"{path}: a TIFF stack must be 4D (T, Z, Y, X); this one has shape {shape}{hint}")
    pa = axes[:2] if len(axes) == 4 else ""
    z_outer = pa == "ZT"
    n_t, n_z = (shape[1], shape[0]) if z_outer else (shape[0], shape[1])
    frame_shape = (shape[2], shape[3], n_z)
    return SequenceSource(path.stem, [FrameSource(f"{path.stem}_t{t:03d}", path, t, (n_t, n_z, z_outer), frame_shape)
                                      for t in range(n_t)])


def _glob_files(folder: Path, pattern: str) -> list[Path]:
    return [p for p in folder.glob(pattern) if p.is_file()]


def find_sequences(input_path: str | Path, masks: str = CYTOPACQ_MASKS, order: str = "natural") -> list[SequenceSource]:
    """The sequences under ``input_path``, with their frames in time order.

    * A ``.tif`` file: one 4D stack ``(T, Z, Y, X)`` (axes from the file's
      ImageJ/OME metadata when they say ``ZT…``), one sequence.
    * A folder with files matching ``masks`` itself: one sequence (the folder's name).
    * Otherwise each sub-folder (in name order) with files matching ``masks``
      (CytoPacq: ``<sequence>/phantom/sim_data_afterTM/mask_t*.tif``) is a
      sequence; when ``masks`` has a folder part that matches nothing, its file
      part alone (e.g. ``mask_t*.tif``) is tried the same way.
    * Otherwise the 4D TIFF stacks directly in the folder, one sequence each.

    Raises:
        UserError: a missing input, no masks, a mask that is not 3D, a stack
            that is not 4D, an unreadable TIFF.
    """
    p = Path(input_path)
    if not p.exists():
        raise UserError(f"{p}: input folder not found")
    if p.is_file():
        if p.suffix.lower() not in TIFF_SUFFIXES:
            raise UserError(f"{p}: expected a folder of mask TIFFs or a 4D TIFF stack (.tif)")
        return [_stack_sequence(p)]
    patterns = [masks]
    if Path(masks).name != masks:
        patterns.append(Path(masks).name)
    subs = sorted((d for d in p.iterdir() if d.is_dir()), key=lambda d: d.name)
    for pattern in patterns:
        own = _glob_files(p, pattern)
        if own:
            return [_per_frame_sequence(p.name, own, order)]
        found = [(d.name, files) for d in subs if (files := _glob_files(d, pattern))]
        if found:
            return [_per_frame_sequence(name, files, order) for name, files in found]
    tiffs = sorted((f for f in p.iterdir() if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES),
                   key=lambda f: f.name)
    if tiffs:
        stacks = [f for f in tiffs if len(_squeeze(*_tiff_info(f))[0]) == 4]
        if stacks:
            return [_stack_sequence(f) for f in stacks]
        raise UserError(f"{p}: no masks matching '{masks}' in this folder or its sub-folders, and its "
                        f"{len(tiffs)} TIFF file(s) are not 4D stacks; for a folder of per-frame masks "
                        "pass --masks '*.tif'")
    raise UserError(f"{p}: no masks: no file matches '{masks}' in this folder or its sub-folders, "
                    "and it holds no TIFF file")


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
    """

    mask: np.ndarray
    origin: tuple[int, int, int]
    resized_shape: tuple[int, int, int]


def _cell_and_foreground(vol: np.ndarray, label: int | None, where: str) -> tuple[np.ndarray, np.ndarray]:
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


def prepare_frame(volume: np.ndarray, options: Options, where: str = "frame") -> FrameResult:
    """Resize, pad, crop around the cell, binarise and clean one frame (steps 2–5 of the module docstring).

    Args:
        volume: label image in MATLAB order ``(rows, columns, slices)``.
        options: the run's settings.
        where: the frame's name for messages.

    Raises:
        SkipSequence: empty frame, no voxel of the cell's label, or a crop that would cut the cell.
        UserError: the crop box is larger than the padded volume.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise UserError(f"{where}: the mask is not 3D (shape {vol.shape})")
    if options.scale != 1.0:
        vol = imresize3(vol, scale=options.scale, method="nearest")
    cell, fg = _cell_and_foreground(vol, options.label, where)
    kept = select_components(fg, options.connectivity, options.components)
    pad = int(options.pad)
    padded = tuple(n + 2 * pad for n in vol.shape)
    if options.crop is None:
        origin, size = (0, 0, 0), padded
    else:
        n_crop = int(options.crop)
        if any(n_crop > n for n in padded):
            raise UserError(f"{where}: the {n_crop}³ crop does not fit the padded volume "
                            f"{'×'.join(map(str, padded))} (resized {'×'.join(map(str, vol.shape))} + 2×{pad}); "
                            "lower --crop or raise --pad")
        x, y, z = regionprops_centroid(cell)  # 1-based (column, row, slice), as MATLAB gives it
        centre = matlab_round(centroid_rcs((x + pad, y + pad, z + pad)))  # 1-based (row, column, slice)
        origin_l = []
        for c, n in zip(centre.tolist(), padded):
            lo = c - n_crop // 2
            hi = lo + n_crop - 1
            if lo < 1:
                hi += 1 - lo
                lo = 1
            if hi > n:  # the original compares the slice axis with the column count here: fixed
                lo -= hi - n
                hi = n
            origin_l.append(lo - 1)
        origin, size = tuple(origin_l), (n_crop,) * 3
    for ax, name in enumerate(("rows (X)", "columns (Y)", "slices (Z)")):
        other = tuple(a for a in range(3) if a != ax)
        occupied = np.flatnonzero(kept.any(axis=other))
        first, last = int(occupied[0]) + pad, int(occupied[-1]) + pad
        if first < origin[ax] or last > origin[ax] + size[ax] - 1:
            raise SkipSequence(f"{where}: the {size[ax]}-voxel crop would cut the cell along the {name}: it spans "
                               f"{last - first + 1} voxels there (after resizing by {options.scale:g})")
    out = np.zeros(size, dtype=bool)
    src, dst = [], []
    for o, s, n in zip(origin, size, vol.shape):
        lo = max(o - pad, 0)
        hi = min(o - pad + s, n)
        src.append(slice(lo, hi))
        dst.append(slice(lo - (o - pad), hi - (o - pad)))
    out[tuple(dst)] = kept[tuple(src)]
    return FrameResult(out, tuple(int(v) for v in origin), tuple(int(n) for n in vol.shape))


# --------------------------------------------------------------------------
# one sequence, a whole run

@dataclass
class Result:
    """What a run did: the files written and the sequences skipped, ``(name, reason)``."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _provenance(src: SequenceSource, options: Options) -> dict:
    opts = {k: ("none" if v is None else v) for k, v in asdict(options).items()}
    opts["previews"] = int(opts["previews"])
    return {
        "generator": "matlab_ports.voxvol_to_sdf", "autodecoder_version": __version__,
        "source": str(src.frames[0].path.resolve().parent if src.frames else ""),
        "source_frames": "\n".join(f.name for f in src.frames),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **{f"option_{k}": v for k, v in opts.items()},
    }


def convert_sequence(src: SequenceSource, output: Path, options: Options, bar=None) -> Path:
    """Convert one sequence to ``<output>/<name>.<fmt>`` (and its previews); returns the SDF file.

    Frames are written as they are computed (HDF5); the file appears under
    its name only when every frame is done. Raises :class:`SkipSequence`
    (leaving no output) if a frame cannot be converted.
    """
    import h5py

    from autodecoder.io.sequences import SequenceWriter
    from autodecoder.io.pictures import mip, save_image

    output = Path(output)
    path = output / f"{src.name}.{options.fmt}"
    writer: SequenceWriter | None = None
    previews: list[tuple[str, np.ndarray]] = []
    origins: list[tuple[int, int, int]] = []
    first_shape = None
    try:
        for fr in src.frames:
            where = f"frame {fr.name}"
            res = prepare_frame(fr.read(), options, where)
            try:
                sdf = mask_to_sdf(res.mask, clamp=options.clamp)
            except ValueError as e:
                raise SkipSequence(f"{where}: {e}") from None
            if writer is None:
                first_shape = res.resized_shape
                writer = SequenceWriter(path, len(src.frames), sdf.shape, options.compression,
                                        _provenance(src, options))
            elif sdf.shape != writer.grid_shape:
                raise SkipSequence(f"{where} gives a {sdf.shape} grid but the first frame gave {writer.grid_shape} "
                                   f"(frames of different sizes need --crop)")
            writer.write_frame(len(origins), sdf)
            origins.append(res.origin)
            if options.previews:
                previews.append((fr.name, mip(sdf <= 0)))
            if bar is not None:
                bar.update(1)
        if writer is None:
            raise SkipSequence("no frames")
        extra = {"crop_origin": np.asarray(origins, dtype=np.int64),
                 "resized_shape": np.asarray(first_shape, dtype=np.int64)}
        writer.attrs.update(extra)  # MAT: stored with the provenance at close
        writer.close()
    except BaseException:
        if writer is not None:
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
    import math
    for s in seqs:
        for fr in s.frames:
            if fr.shape is None:
                continue
            padded = tuple(int(math.ceil(options.scale * n)) + 2 * options.pad for n in fr.shape)
            if any(options.crop > n for n in padded):
                raise UserError(f"{fr.path}: the {options.crop}³ crop does not fit this frame: "
                                f"{'×'.join(map(str, fr.shape))} voxels, resized by {options.scale:g} and padded "
                                f"by {options.pad} give {'×'.join(map(str, padded))}; lower --crop or raise --pad")


def voxvol_to_sdf(input_path: str | Path, output: str | Path, options: Options = Options(),
                  progress: bool = True, log: Callable[[str], None] | None = None) -> Result:
    """Convert every sequence found under ``input_path`` (see :func:`find_sequences`) into ``output``.

    Sequences that cannot be converted are skipped as a whole and reported
    (in the result, and through ``log``); the others are converted.

    Returns:
        :class:`Result` with the SDF files written and the skipped sequences.

    Raises:
        UserError: bad options or inputs (missing folder, no masks, a mask that is not 3D, …).
    """
    from tqdm import tqdm
    options.check()
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: the output must be a folder")
    seqs = find_sequences(input_path, options.masks, options.order)
    _check_crop_fits(seqs, options)
    say = log if log is not None else tqdm.write
    result = Result()
    bar = tqdm(total=sum(len(s.frames) for s in seqs), unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        for s in seqs:
            bar.set_description(s.name)
            done_before = bar.n
            try:
                result.written.append(convert_sequence(s, out, options, bar))
            except SkipSequence as e:
                result.skipped.append((s.name, str(e)))
                bar.update(len(s.frames) - (bar.n - done_before))
                say(f"skipped {s.name}: {e}")
    finally:
        bar.close()
    n = len(seqs)
    say(f"voxvol_to_sdf: {len(result.written)} of {n} sequence(s) written to {out}"
        + (f" (previews in {out / PREVIEW_DIR})" if options.previews and result.written else ""))
    if result.skipped:
        say(f"skipped {len(result.skipped)} of {n} sequence(s), kept out of the training set as a whole:")
        for name, why in result.skipped:
            say(f"  {name}: {why}")
    return result


# --------------------------------------------------------------------------
# the demo

def demo_options(grid: int = 64, clamp: float = 8.0) -> Options:
    """Settings for the demo's CytoPacq-style masks (:mod:`autodecoder.demo_masks`) on a ``grid``³ volume.

    Scale 1, a ``grid``³ crop around the cell after ``grid // 2`` voxels of
    padding (so the box never needs shifting), outer clamp ``clamp`` voxels
    (8 at 64³: the original's 32 at 256³), every component kept (the demo's
    dividing cells end as two daughters).
    """
    return Options(scale=1.0, pad=grid // 2, crop=grid, clamp=clamp, components="all")


def convert_demo_masks(mask_root: str | Path, out_dir: str | Path, grid: int = 64, clamp: float = 8.0,
                       progress: bool = True, log: Callable[[str], None] | None = None) -> list[Path]:
    """Run the port on the demo's mask folders (``<mask_root>/<name>/phantom/sim_data_afterTM/``).

    Returns the SDF files (``<out_dir>/<name>.h5``). Each frame's ``sdf <= 0``
    is the phantom mask translated by a whole number of voxels (the crop
    centres each frame on its own rounded centroid), with no voxel lost; the
    translation is ``pad - crop_origin`` per frame (``crop_origin`` is stored
    in the file's attributes).
    """
    res = voxvol_to_sdf(mask_root, out_dir, demo_options(grid, clamp), progress=progress, log=log)
    if res.skipped:
        raise UserError(f"demo masks: sequences skipped: {'; '.join(f'{n}: {w}' for n, w in res.skipped)}")
    return res.written


# --------------------------------------------------------------------------
# command line

EPILOG = """\
examples:
  # CytoPacq output: <cytopacq>/<sequence>/phantom/sim_data_afterTM/mask_t*.tif
  python matlab_ports/voxvol_to_sdf.py ~/cytopacq_runs data/my_cells
  # a folder of per-frame masks named cell_001.tif, cell_002.tif, ... (no resize or padding)
  python matlab_ports/voxvol_to_sdf.py masks/ data/my_cells --masks 'cell_*.tif' --scale 1 --pad 0 --crop none
  # one 4D stack (T, Z, Y, X) of a dividing cell with label 3, keeping both daughters
  python matlab_ports/voxvol_to_sdf.py movie.tif data/my_cells --label 3 --components all

Exit status: 0 when every sequence was written, 1 when some were skipped
(listed at the end), 2 on an error.
"""


def build_parser() -> Parser:
    d = Options()
    p = Parser(prog="voxvol_to_sdf.py",
               description="Time-lapse voxel masks -> training SDF sequences (port of voxvol_to_sdf.m): "
                           "resize, pad, crop around the cell, keep the largest component, clamped signed "
                           "distance, one .h5/.mat file per sequence plus MIP previews.",
               epilog=EPILOG)
    p.add_argument("input", help="a folder of sequences (CytoPacq layout), a folder of per-frame mask TIFFs, "
                   "or a 4D TIFF stack (T, Z, Y, X)")
    p.add_argument("output", help="output folder: <output>/<sequence>.h5 and <output>/preview/<sequence>/")
    p.add_argument("--masks", default=d.masks, metavar="GLOB",
                   help=f"mask files of a sequence, relative to its folder (default: {d.masks})")
    p.add_argument("--order", choices=("natural", "lexicographic"), default=d.order,
                   help="frame order: by frame number (default), or character order like MATLAB's dir")
    p.add_argument("--label", type=int, default=d.label,
                   help="the cell of interest in label images: centre on it and keep only it "
                        "(default: centre on label 1, every non-zero voxel is foreground)")
    p.add_argument("--scale", type=float, default=d.scale, help=f"resize factor, nearest neighbour (default {d.scale})")
    p.add_argument("--pad", type=int, default=d.pad, help=f"zero voxels added on every side (default {d.pad})")
    p.add_argument("--crop", type=optional_int, default=d.crop, metavar="N|none",
                   help=f"edge of the cubic crop around the cell's centroid, or none (default {d.crop})")
    p.add_argument("--components", choices=("largest", "all"), default=d.components,
                   help="keep the largest connected component (default) or all (dividing cells)")
    p.add_argument("--connectivity", type=int, choices=(26, 18, 6), default=d.connectivity,
                   help=f"3D connectivity of components (default {d.connectivity}, MATLAB's)")
    p.add_argument("--clamp", type=optional_float, default=d.clamp, metavar="VOXELS|none",
                   help=f"outer distance clamp in voxels (default {d.clamp:g})")
    p.add_argument("--format", dest="fmt", choices=("h5", "mat"), default=d.fmt, help="output format (default h5)")
    p.add_argument("--compression", type=int, default=d.compression, help=f"HDF5 gzip level (default {d.compression})")
    p.add_argument("--no-previews", action="store_true", help="do not write the MIP preview PNGs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()

    def go() -> int:
        a = p.parse_args(argv)
        opts = Options(scale=a.scale, pad=a.pad, crop=a.crop, clamp=a.clamp, components=a.components,
                       connectivity=a.connectivity, label=a.label, fmt=a.fmt, compression=a.compression,
                       masks=a.masks, order=a.order, previews=not a.no_previews)
        res = voxvol_to_sdf(a.input, a.output, opts, progress=not a.no_progress)
        return 1 if res.skipped else 0
    return run_guarded(go)


if __name__ == "__main__":
    sys.exit(main())
