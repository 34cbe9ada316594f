#!/usr/bin/env python
"""Port of ``quick_preview.m``: a PNG per frame of SDF files, the maximum projection of ``sdf <= 0``.

The command line over :func:`autodecoder.io.tif_volumes.quick_preview`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from autodecoder.cli import base
from autodecoder.io.tif_volumes import quick_preview

EXAMPLES = ("python matlab_ports/quick_preview.py experiments/demo/OUT_reconstruct --out previews/",
            "# -> previews/rec_seq_000_rot_..._t000.png, ..._t001.png, ...")


def build_parser() -> base.Parser:
    """The command line."""
    p = base.parser("quick_preview.py", "A PNG per frame of SDF files: the maximum projection along Z of sdf <= 0 "
                    "(port of quick_preview.m).", EXAMPLES)
    base.add_sdf_inputs(p, "preview", per_file=False)
    p.add_argument("--threshold", type=float, default=0.0,
                   help="the cell is sdf <= THRESHOLD (default 0; 0.035 for filopodial cells)")
    p.add_argument("--sheet", action="store_true", help="also a contact sheet of all frames per file")
    base.add_progress(p)
    return p


def command(a: argparse.Namespace) -> int:
    """Write the previews."""
    written = quick_preview(a.inputs, a.out, a.threshold, a.sheet, progress=not a.no_progress)
    print(f"quick_preview: wrote {len(written)} PNG file(s)" + (f" to {a.out}" if a.out else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    return base.run(build_parser(), command, argv)


if __name__ == "__main__":
    sys.exit(main())
