"""Binary TIFF volumes and MIP previews per frame of SDF files: the original's
``convert_sdf_to_tif_volume_*.m`` (:func:`sdf_to_tif`) and ``quick_preview.m`` (:func:`quick_preview`).

:func:`sdf_to_tif`, per frame (the two variants of the original, every number an argument):

* ``cele`` (C. elegans): mask ``sdf <= 0``; nearest-neighbour resize to 256³
  (MATLAB ``imresize3`` sampling); Gaussian σ = 7 on the 0/255 uint8 volume
  (MATLAB ``imgaussfilt3``: kernel ``2·ceil(2σ)+1``, replicated borders,
  rounded back to uint8); voxels ``> 192``.
* ``filo`` (filopodial): mask ``sdf <= 0.035``, no smoothing. The original
  script computes a resize and then saves the un-resized volume; the port
  writes what the original writes (no resize) and says so here: pass
  ``size=256`` for the resized volume the script seems to have meant.

Files: ``<out>/<file stem>/cell_<type>_tNNN.tif`` (binary, uint8 0/255,
pages = Z, rows = X, columns = Y — the orientation of
:mod:`autodecoder.io.exports`, shared with ``test.py --tif``) and
``preview_cell_<type>_tNNN.png`` (maximum projection along Z); frames from 000.

:func:`quick_preview`: for every frame, the maximum projection along ``Z`` of the mask
``sdf <= threshold``, ``X`` rows by ``Y`` columns, white inside, named ``<file>_tNNN.png``,
written by :func:`autodecoder.io.exports.write_png_previews` (the code ``test.py --png`` uses).
The command lines are ``matlab_ports/sdf_to_tif.py`` and ``matlab_ports/quick_preview.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from autodecoder.experiment.errors import UserError
from autodecoder.io.discovery import each_sdf_file
from autodecoder.io.exports import FILO_THRESHOLD, masks_from_sdf, write_hyperstack, write_png_previews, write_tif_frame
from autodecoder.io.matlab_compat import imgaussfilt3, imresize3, matlab_round
from autodecoder.io.pictures import mip, save_image

__all__ = ["VARIANTS", "Variant", "binary_volume", "sdf_to_tif", "quick_preview"]


@dataclass(frozen=True)
class Variant:
    """Settings of one ``convert_sdf_to_tif_volume_*.m`` script.

    Attributes:
        threshold: the cell is ``sdf <= threshold``.
        size: edge of the nearest-neighbour resize, or None (no resize).
        sigma: Gaussian σ in voxels of the resized volume (0: none).
        level: after smoothing, the cell is ``value > level`` on the 0–255 scale.
    """

    threshold: float
    size: int | None
    sigma: float
    level: float = 192.0


VARIANTS = {
    "cele": Variant(threshold=0.0, size=256, sigma=7.0),
    "filo": Variant(threshold=FILO_THRESHOLD, size=None, sigma=0.0),
}


def binary_volume(sdf_xyz: np.ndarray, v: Variant) -> np.ndarray:
    """One frame through a variant: threshold, resize, smooth, binarise → bool ``(X, Y, Z)`` (resized)."""
    vol = masks_from_sdf(sdf_xyz, v.threshold).astype(np.uint8) * np.uint8(255)
    if v.size is not None:
        vol = imresize3(vol, output_size=(v.size,) * 3, method="nearest")
    if v.sigma > 0:
        smooth = imgaussfilt3(vol, v.sigma)
        return matlab_round(np.clip(smooth, 0, 255)) > v.level  # imgaussfilt3 on uint8 returns uint8
    return vol > 0


def sdf_to_tif(files: Sequence[str | Path], out: str | Path | None = None, variant: str = "cele",
               cell_type: str | None = None, threshold: float | None = None, size: int | None | str = "default",
               sigma: float | None = None, level: float | None = None,
               voxel_size: tuple[float, float, float] | None = None, hyperstack: bool = False,
               progress: bool = True) -> list[Path]:
    """Convert SDF files (or folders of them) to binary TIFF volumes and MIP previews.

    Args:
        files: SDF files and/or folders.
        out: output root; files go to ``<out>/<file stem>/`` (default ``tif/`` next to each file).
        variant: ``"cele"`` or ``"filo"``: the defaults of the other arguments.
        cell_type: ``<type>`` in the file names (default: the variant's name).
        threshold, size, sigma, level: override the variant (``size=None``: no resize).
        voxel_size: µm along X, Y, Z of the SDF grid; written as ImageJ
            calibration, scaled by the resize.
        hyperstack: also write all frames as one ImageJ hyperstack
            ``cell_<type>_hyperstack.tif`` (TZYX).
        progress: progress bar.

    Returns:
        Every file written.
    """
    if variant not in VARIANTS:
        raise UserError(f"--variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    base = VARIANTS[variant]
    v = Variant(threshold=base.threshold if threshold is None else float(threshold),
                size=base.size if size == "default" else size,  # type: ignore[arg-type]
                sigma=base.sigma if sigma is None else float(sigma),
                level=base.level if level is None else float(level))
    if v.size is not None and v.size < 2:
        raise UserError(f"--size must be at least 2 voxels or 'none', got {v.size}")
    if v.sigma < 0:
        raise UserError(f"--sigma must be >= 0, got {v.sigma}")
    name = cell_type or variant
    written: list[Path] = []
    for p, seq, dest, bar in each_sdf_file(files, out, "tif", progress):
        grid = seq.grid_shape if v.size is None else (v.size,) * 3
        vs = None
        if voxel_size is not None:
            vs = tuple(float(a) * n / g for a, n, g in zip(voxel_size, seq.grid_shape, grid))

        def volumes():
            for t, frame in enumerate(seq.frames()):
                b = binary_volume(frame, v)
                written.append(write_tif_frame(b, dest / f"cell_{name}_t{t:03d}.tif", vs))
                png = dest / f"preview_cell_{name}_t{t:03d}.png"
                save_image(mip(b), png)
                written.append(png)
                bar.update(1)
                yield b
        if hyperstack:
            written.append(write_hyperstack(volumes(), seq.n_frames, grid,
                                            dest / f"cell_{name}_hyperstack.tif", vs))
        else:
            for _ in volumes():
                pass
    return written


def quick_preview(files: Sequence[str | Path], out: str | Path | None = None, threshold: float = 0.0,
                  sheet: bool = False, progress: bool = True) -> list[Path]:
    """Write the previews of SDF files (or folders of them); returns the PNGs written.

    Args:
        files: SDF files and/or folders holding them.
        out: output folder; default ``preview/`` next to each file.
        threshold: the cell is ``sdf <= threshold``.
        sheet: also write a contact sheet ``<file>_sheet.png`` per file.
        progress: progress bar over files (frames within).
    """
    written: list[Path] = []
    for p, seq, dest, bar in each_sdf_file(files, out, "preview", progress, per_file_folder=False):
        def masks() -> Iterator[np.ndarray]:
            for frame in seq.frames():
                yield masks_from_sdf(frame, threshold)
                bar.update(1)
        written += write_png_previews(masks(), dest, p.stem, sheet=sheet)
    return written
