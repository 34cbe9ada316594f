#!/usr/bin/env python
"""Port of ``quick_preview.m``: a PNG per frame of SDF files, the maximum projection of ``sdf <= 0``.

For every ``.h5``/``.mat`` file and every frame: the maximum projection along
the last axis (``Z``) of the mask ``sdf <= threshold``, ``X`` rows by ``Y``
columns, white inside, named ``<file>_tNNN.png`` (frames from 000). The
images are written by :func:`autodecoder.exports.write_png_previews`, the code
``test.py --png`` uses.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from typing import Iterator, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from autodecoder.io.exports import masks_from_sdf, write_png_previews  # noqa: E402
from matlab_ports.common import Parser, each_sequence, run_guarded  # noqa: E402

__all__ = ["quick_preview", "main"]


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
    for p, seq, dest, bar in each_sequence(files, out, "preview", progress, per_file_folder=False):
        def masks() -> Iterator[np.ndarray]:
            for frame in seq.frames():
                yield masks_from_sdf(frame, threshold)
                bar.update(1)
        written += write_png_previews(masks(), dest, p.stem, sheet=sheet)
    return written


EPILOG = """\
example:
  python matlab_ports/quick_preview.py experiments/demo/OUT_reconstruct --out previews/
  # -> previews/rec_seq_000_rot_..._t000.png, ..._t001.png, ...
"""


def main(argv: Sequence[str] | None = None) -> int:
    p = Parser(prog="quick_preview.py",
               description="A PNG per frame of SDF files: the maximum projection along Z of sdf <= 0 "
                           "(port of quick_preview.m).", epilog=EPILOG)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="SDF files (.h5, .mat) or folders of them")
    p.add_argument("--out", help="output folder (default: preview/ next to each file)")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="the cell is sdf <= THRESHOLD (default 0; 0.035 for filopodial cells)")
    p.add_argument("--sheet", action="store_true", help="also a contact sheet of all frames per file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def go() -> int:
        a = p.parse_args(argv)
        written = quick_preview(a.inputs, a.out, a.threshold, a.sheet, progress=not a.no_progress)
        print(f"quick_preview: wrote {len(written)} PNG file(s)"
              + (f" to {a.out}" if a.out else ""))
        return 0
    return run_guarded(go)


if __name__ == "__main__":
    sys.exit(main())
