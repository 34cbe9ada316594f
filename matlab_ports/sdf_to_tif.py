#!/usr/bin/env python
"""Port of ``convert_sdf_to_tif_volume_*.m``: binary TIFF volumes and MIP PNGs per frame of SDF files.

The command line over :func:`autodecoder.io.tif_volumes.sdf_to_tif` (the variants and file layout).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from autodecoder.cli import base
from autodecoder.io.tif_volumes import VARIANTS, sdf_to_tif

EXAMPLES = (
    "# C. elegans settings: sdf <= 0, resize to 256^3, Gaussian 7, > 192",
    "python matlab_ports/sdf_to_tif.py experiments/cele/OUT_randomgen --out tifs/",
    "# filopodial settings (sdf <= 0.035, no smoothing), calibrated 0.1 um voxels, plus a hyperstack",
    "python matlab_ports/sdf_to_tif.py gen_seq_000.h5 --variant filo --voxel-size 0.1 --hyperstack",
)


def build_parser() -> base.Parser:
    """The command line."""
    p = base.parser("sdf_to_tif.py", "Binary TIFF volume and MIP PNG per frame of SDF files "
                    "(port of convert_sdf_to_tif_volume_*.m).", EXAMPLES)
    base.add_sdf_inputs(p, "tif")
    p.add_argument("--variant", choices=tuple(VARIANTS), default="cele",
                   help="cele: sdf<=0, resize 256, sigma 7, >192 (default); filo: sdf<=0.035, as is")
    p.add_argument("--type", dest="cell_type", help="<type> in cell_<type>_tNNN.tif (default: the variant)")
    p.add_argument("--threshold", type=float, help="the cell is sdf <= THRESHOLD (variant default)")
    p.add_argument("--size", type=base.optional_int, default=argparse.SUPPRESS, metavar="N|none",
                   help="nearest-neighbour resize to N^3, or none (variant default)")
    p.add_argument("--sigma", type=float, help="Gaussian sigma in voxels, 0 = none (variant default)")
    p.add_argument("--level", type=float, help="after smoothing, inside is > LEVEL of 255 (default 192)")
    p.add_argument("--voxel-size", type=base.voxel_size, metavar="UM|X,Y,Z",
                   help="voxel size of the SDF grid in um (calibrates the TIFFs; scaled by the resize)")
    p.add_argument("--hyperstack", action="store_true", help="also one ImageJ hyperstack (TZYX) per file")
    base.add_progress(p)
    return p


def command(a: argparse.Namespace) -> int:
    """Write the TIFF volumes and previews."""
    written = sdf_to_tif(a.inputs, a.out, a.variant, a.cell_type, a.threshold, getattr(a, "size", "default"),
                         a.sigma, a.level, a.voxel_size, a.hyperstack, progress=not a.no_progress)
    print(f"sdf_to_tif: wrote {len(written)} file(s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    return base.run(build_parser(), command, argv)


if __name__ == "__main__":
    sys.exit(main())
