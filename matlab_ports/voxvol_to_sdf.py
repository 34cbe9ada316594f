#!/usr/bin/env python
"""Port of ``voxvol_to_sdf.m``: time-lapse voxel masks → training SDF sequences (docs/method.md §6).

The command line over :mod:`autodecoder.io.prepare` (the steps, options and outputs) and
:func:`autodecoder.io.discovery.find_sequences` (which inputs make a sequence).
``matlab_ports/README.md`` documents every place where MATLAB and Python differ.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from autodecoder.cli import base
from autodecoder.io.prepare import Options, voxvol_to_sdf

EXAMPLES = (
    "# CytoPacq output: <cytopacq>/<sequence>/phantom/sim_data_afterTM/mask_t*.tif",
    "python matlab_ports/voxvol_to_sdf.py ~/cytopacq_runs data/my_cells",
    "# a folder of per-frame masks named cell_001.tif, cell_002.tif, ... (no resize or padding)",
    "python matlab_ports/voxvol_to_sdf.py masks/ data/my_cells --masks 'cell_*.tif' --scale 1 --pad 0 --crop none",
    "# one 4D stack (T, Z, Y, X) of a dividing cell with label 3, keeping both daughters",
    "python matlab_ports/voxvol_to_sdf.py movie.tif data/my_cells --label 3 --components all",
)


def build_parser() -> base.Parser:
    """The command line: input and output, then one option per :class:`Options` field."""
    d = Options()
    p = base.parser("voxvol_to_sdf.py",
                    "Time-lapse voxel masks -> training SDF sequences (port of voxvol_to_sdf.m): resize, pad, "
                    "crop around the cell, keep the largest component, clamped signed distance, one .h5/.mat "
                    "file per sequence plus MIP previews. Exit status: 0 when every sequence was written, 1 when "
                    "some were skipped (listed at the end), 2 on an error.", EXAMPLES)
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
    p.add_argument("--crop", type=base.optional_int, default=d.crop, metavar="N|none",
                   help=f"edge of the cubic crop around the cell's centroid, or none (default {d.crop})")
    p.add_argument("--components", choices=("largest", "all"), default=d.components,
                   help="keep the largest connected component (default) or all (dividing cells)")
    p.add_argument("--connectivity", type=int, choices=(26, 18, 6), default=d.connectivity,
                   help=f"3D connectivity of components (default {d.connectivity}, MATLAB's)")
    p.add_argument("--clamp", type=base.optional_float, default=d.clamp, metavar="VOXELS|none",
                   help=f"outer distance clamp in voxels (default {d.clamp:g})")
    p.add_argument("--format", dest="fmt", choices=("h5", "mat"), default=d.fmt, help="output format (default h5)")
    p.add_argument("--compression", type=int, default=d.compression, help=f"HDF5 gzip level (default {d.compression})")
    p.add_argument("--no-previews", action="store_true", help="do not write the MIP preview PNGs")
    base.add_progress(p)
    return p


def command(a: argparse.Namespace) -> int:
    """Convert; exit status 1 when some sequences were skipped."""
    opts = Options(scale=a.scale, pad=a.pad, crop=a.crop, clamp=a.clamp, components=a.components,
                   connectivity=a.connectivity, label=a.label, fmt=a.fmt, compression=a.compression,
                   masks=a.masks, order=a.order, previews=not a.no_previews)
    res = voxvol_to_sdf(a.input, a.output, opts, progress=not a.no_progress)
    return 1 if res.skipped else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, 1 when sequences were skipped, 2)."""
    return base.run(build_parser(), command, argv)


if __name__ == "__main__":
    sys.exit(main())
