"""The demo's phantoms as CytoPacq-style mask TIFFs, and their conversion by the ``voxvol_to_sdf`` port.

CytoPacq writes each time point of a simulated cell as a multi-page 16-bit
label TIFF, ``<sequence>/phantom/sim_data_afterTM/mask_tNNN.tif``: one page
per slice, label 1 for the cell, 0 for the background. tifffile reads such a
file as ``(pages, rows, columns)``; the port turns it into MATLAB's
``(rows, columns, slices)``, which is the SDF's ``(X, Y, Z)``, with
``transpose(1, 2, 0)``. This module writes each ``(X, Y, Z)`` phantom mask
with the inverse transpose (:func:`autodecoder.io.exports.frame_to_tiff`), so the
port reads back exactly the phantom's ``(X, Y, Z)`` array.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import tifffile

from autodecoder.demo import phantoms
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import atomic_path
from autodecoder.io.exports import frame_to_tiff
from autodecoder.io.prepare import Options, voxvol_to_sdf

__all__ = ["MASK_DIR", "write_label_tiff", "write_cytopacq_masks", "demo_options", "convert_demo_masks"]

#: Where CytoPacq puts the masks inside a sequence folder.
MASK_DIR = Path("phantom") / "sim_data_afterTM"


def write_label_tiff(mask_xyz: np.ndarray, path: Path, label: int = 1) -> Path:
    """Write a bool ``(X, Y, Z)`` mask as a CytoPacq-like uint16 label TIFF (pages = Z, rows = X, columns = Y).

    Plain multi-page TIFF (no ImageJ or shape metadata, as CytoPacq's),
    zlib-compressed; ``label`` inside the cell, 0 outside.
    """
    vol = frame_to_tiff(np.asarray(mask_xyz, dtype=bool)).astype(np.uint16) * np.uint16(label)
    with atomic_path(Path(path)) as tmp:
        tifffile.imwrite(tmp, vol, metadata=None, compression="zlib", photometric="minisblack")
    return Path(path)


def write_cytopacq_masks(out_root: Path, grid: int = 64, frames: int = 12) -> list[Path]:
    """Write :func:`autodecoder.demo.phantoms.demo_sequences` as CytoPacq-style mask folders.

    Files: ``<out_root>/<name>/phantom/sim_data_afterTM/mask_tNNN.tif``
    (``NNN`` = frame from 000), one folder per sequence, names
    ``seq_000_divide`` … ``seq_005_deform``.

    Returns:
        The sequence folders ``<out_root>/<name>``, in order.
    """
    out_root = Path(out_root)
    folders = []
    for name, masks in phantoms.demo_sequences(grid, frames):
        d = out_root / name / MASK_DIR
        for t, m in enumerate(masks):
            write_label_tiff(m, d / f"mask_t{t:03d}.tif")
        folders.append(out_root / name)
    return folders


def demo_options(grid: int = 64, clamp: float = 8.0) -> Options:
    """Settings for the demo's CytoPacq-style masks (:mod:`autodecoder.demo.masks`) on a ``grid``³ volume.

    Scale 1, a ``grid``³ crop around the cell after ``grid // 2`` voxels of
    padding (so the box never needs shifting), outer clamp ``clamp`` voxels
    (8 at 64³: the original's 32 at 256³), every component kept (the demo's
    dividing cells end as two daughters).
    """
    return Options(scale=1.0, pad=grid // 2, crop=grid, clamp=clamp, components="all")


def convert_demo_masks(mask_root: str | Path, out_dir: str | Path, grid: int = 64, clamp: float = 8.0,
                       progress: bool = True, log: Callable[[str], None] | None = None) -> list[Path]:
    """Prepare the demo's mask folders (``<mask_root>/<name>/phantom/sim_data_afterTM/``).

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
