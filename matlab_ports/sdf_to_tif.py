#!/usr/bin/env python
"""Port of ``convert_sdf_to_tif_volume_*.m``: binary TIFF volumes and MIP PNGs per frame of SDF files.

Per frame (the two variants of the original, every number an option):

* ``cele`` (C. elegans): mask ``sdf <= 0``; nearest-neighbour resize to 256³
  (MATLAB ``imresize3`` sampling); Gaussian σ = 7 on the 0/255 uint8 volume
  (MATLAB ``imgaussfilt3``: kernel ``2·ceil(2σ)+1``, replicated borders,
  rounded back to uint8); voxels ``> 192``.
* ``filo`` (filopodial): mask ``sdf <= 0.035``, no smoothing. The original
  script computes a resize and then saves the un-resized volume; the port
  writes what the original writes (no resize) and says so here: pass
  ``--size 256`` for the resized volume the script seems to have meant.

Files: ``<out>/<file stem>/cell_<type>_tNNN.tif`` (binary, uint8 0/255,
pages = Z, rows = X, columns = Y — the orientation of
:mod:`autodecoder.exports`, shared with ``test.py --tif``) and
``preview_cell_<type>_tNNN.png`` (maximum projection along Z); frames from 000.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Sequence  # noqa: E402

import numpy as np  # noqa: E402

from autodecoder.experiment.errors import UserError  # noqa: E402
from autodecoder.io.exports import FILO_THRESHOLD, masks_from_sdf, write_hyperstack, write_tif_frame  # noqa: E402
from matlab_ports.common import Parser, each_sequence, optional_int, run_guarded, voxel_size_arg  # noqa: E402
from matlab_ports.matlab_compat import imgaussfilt3, imresize3, matlab_round  # noqa: E402

__all__ = ["VARIANTS", "Variant", "binary_volume", "sdf_to_tif", "main"]


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

    from autodecoder.io.pictures import mip, save_image
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
    for p, seq, dest, bar in each_sequence(files, out, "tif", progress):
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


EPILOG = """\
examples:
  # C. elegans settings: sdf <= 0, resize to 256^3, Gaussian 7, > 192
  python matlab_ports/sdf_to_tif.py experiments/cele/OUT_randomgen --out tifs/
  # filopodial settings (sdf <= 0.035, no smoothing), calibrated 0.1 um voxels, plus a hyperstack
  python matlab_ports/sdf_to_tif.py gen_seq_000.h5 --variant filo --voxel-size 0.1 --hyperstack
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = Parser(prog="sdf_to_tif.py",
               description="Binary TIFF volume and MIP PNG per frame of SDF files "
                           "(port of convert_sdf_to_tif_volume_*.m).", epilog=EPILOG)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="SDF files (.h5, .mat) or folders of them")
    p.add_argument("--out", help="output root; files go to OUT/<file stem>/ (default: tif/ next to each file)")
    p.add_argument("--variant", choices=tuple(VARIANTS), default="cele",
                   help="cele: sdf<=0, resize 256, sigma 7, >192 (default); filo: sdf<=0.035, as is")
    p.add_argument("--type", dest="cell_type", help="<type> in cell_<type>_tNNN.tif (default: the variant)")
    p.add_argument("--threshold", type=float, help="the cell is sdf <= THRESHOLD (variant default)")
    p.add_argument("--size", type=optional_int, default=argparse.SUPPRESS, metavar="N|none",
                   help="nearest-neighbour resize to N^3, or none (variant default)")
    p.add_argument("--sigma", type=float, help="Gaussian sigma in voxels, 0 = none (variant default)")
    p.add_argument("--level", type=float, help="after smoothing, inside is > LEVEL of 255 (default 192)")
    p.add_argument("--voxel-size", type=voxel_size_arg, metavar="UM|X,Y,Z",
                   help="voxel size of the SDF grid in um (calibrates the TIFFs; scaled by the resize)")
    p.add_argument("--hyperstack", action="store_true", help="also one ImageJ hyperstack (TZYX) per file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def go() -> int:
        a = p.parse_args(argv)
        written = sdf_to_tif(a.inputs, a.out, a.variant, a.cell_type, a.threshold, getattr(a, "size", "default"),
                             a.sigma, a.level,
                             a.voxel_size, a.hyperstack, progress=not a.no_progress)
        print(f"sdf_to_tif: wrote {len(written)} file(s)")
        return 0
    return run_guarded(go)


if __name__ == "__main__":
    sys.exit(main())
