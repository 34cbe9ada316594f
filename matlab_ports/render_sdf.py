#!/usr/bin/env python
"""Port of ``render_sdf_*.m``: an isosurface picture per frame of SDF files, drawn with matplotlib.

The command line over :func:`autodecoder.io.renders.render_sdf` (the variants, axes and camera).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Sequence

from autodecoder.cli import base
from autodecoder.io.renders import VARIANTS, render_sdf

EXAMPLES = (
    "python matlab_ports/render_sdf.py experiments/demo/OUT_reconstruct --out renders/",
    "# filopodial settings, a quicker draft on a 128^3 grid with half the triangles per axis",
    "python matlab_ports/render_sdf.py gen_seq_000.h5 --variant filo --size 128 --step 2",
)


def build_parser() -> base.Parser:
    """The command line."""
    p = base.parser("render_sdf.py", "An isosurface picture per frame of SDF files, axes from -1 to 1 "
                    "(port of render_sdf_*.m, drawn with matplotlib).", EXAMPLES)
    base.add_sdf_inputs(p, "render")
    p.add_argument("--variant", choices=tuple(VARIANTS), default="cele",
                   help="cele: sdf<=0, linear resize 256, sigma 7 (default); filo: sdf<=0.035, nearest, sigma 2")
    p.add_argument("--threshold", type=float, help="the cell is sdf <= THRESHOLD (variant default)")
    p.add_argument("--size", type=base.optional_int, default=argparse.SUPPRESS, metavar="N|none",
                   help="resize to N^3 before smoothing, or none (default 256)")
    p.add_argument("--method", choices=("linear", "nearest", "cubic"), help="resize method (variant default)")
    p.add_argument("--sigma", type=float, help="Gaussian sigma in voxels of the resized grid (variant default)")
    p.add_argument("--level", type=float, help="isovalue on the 0-255 volume (default 192)")
    p.add_argument("--step", type=int, default=1, help="marching-cubes step; 2 is ~4x faster (default 1)")
    p.add_argument("--dpi", type=int, default=100, help="picture resolution (default 100, 600x600 pixels)")
    base.add_progress(p)
    return p


def command(a: argparse.Namespace) -> int:
    """Render with the variant and its overrides."""
    changes = {k: v for k, v in (("threshold", a.threshold), ("method", a.method), ("sigma", a.sigma),
                                 ("level", a.level)) if v is not None}
    if hasattr(a, "size"):
        changes["size"] = a.size
    settings = replace(VARIANTS[a.variant], step=a.step, dpi=a.dpi, **changes)
    written = render_sdf(a.inputs, a.out, settings, progress=not a.no_progress)
    print(f"render_sdf: wrote {len(written)} picture(s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    return base.run(build_parser(), command, argv)


if __name__ == "__main__":
    sys.exit(main())
