"""The demo's phantoms as CytoPacq-style mask TIFFs, the input of the ``voxvol_to_sdf`` port.

CytoPacq writes each time point of a simulated cell as a multi-page 16-bit
label TIFF, ``<sequence>/phantom/sim_data_afterTM/mask_tNNN.tif``: one page
per slice, label 1 for the cell, 0 for the background. tifffile reads such a
file as ``(pages, rows, columns)``; the port turns it into MATLAB's
``(rows, columns, slices)``, which is the SDF's ``(X, Y, Z)``, with
``transpose(1, 2, 0)``. This module writes each ``(X, Y, Z)`` phantom mask
with the inverse transpose (:func:`autodecoder.exports.frame_to_tiff`), so the
port reads back exactly the phantom's ``(X, Y, Z)`` array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autodecoder.demo import phantoms
from autodecoder.io.exports import frame_to_tiff
from autodecoder.experiment.workspace import atomic_path

__all__ = ["MASK_DIR", "write_label_tiff", "write_cytopacq_masks"]

#: Where CytoPacq puts the masks inside a sequence folder.
MASK_DIR = Path("phantom") / "sim_data_afterTM"


def write_label_tiff(mask_xyz: np.ndarray, path: Path, label: int = 1) -> Path:
    """Write a bool ``(X, Y, Z)`` mask as a CytoPacq-like uint16 label TIFF (pages = Z, rows = X, columns = Y).

    Plain multi-page TIFF (no ImageJ or shape metadata, as CytoPacq's),
    zlib-compressed; ``label`` inside the cell, 0 outside.
    """
    import tifffile
    vol = frame_to_tiff(np.asarray(mask_xyz, dtype=bool)).astype(np.uint16) * np.uint16(label)
    with atomic_path(Path(path)) as tmp:
        tifffile.imwrite(tmp, vol, metadata=None, compression="zlib", photometric="minisblack")
    return Path(path)


def write_cytopacq_masks(out_root: Path, grid: int = 64, frames: int = 12) -> list[Path]:
    """Write :func:`autodecoder.phantoms.demo_sequences` as CytoPacq-style mask folders.

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
