"""The command lines of ``train.py`` and ``test.py``: parse arguments, call the package.

Bad input ends with one line ``error: …`` on stderr and exit status 2;
Ctrl-C during training exits with 130 after saving ``latest.pth``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Callable, Sequence

from .errors import UserError


def _one_line_warnings() -> None:
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {message}", file=sys.stderr)
    warnings.showwarning = show


def _guard(fn: Callable[[], int]) -> int:
    _one_line_warnings()
    try:
        return fn()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        raise UserError(f"{self.prog}: {message} (see --help)")


def train_main(argv: Sequence[str] | None = None) -> int:
    p = _Parser(prog="train.py", description="Train the SIREN auto-decoder of an experiment folder "
                "from its specs.json.",
                epilog="example: python train.py -x experiments/demo --device cpu --seed 0")
    p.add_argument("-x", "--experiment", required=True, help="experiment folder holding specs.json")
    p.add_argument("--continue", dest="resume", metavar="latest|N",
                   help="resume from latest.pth (full state) or from the checkpoint of epoch N")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if present, else cpu)")
    p.add_argument("--seed", type=int, help="seed of every random draw (default: drawn and recorded)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")

    def go() -> int:
        args = p.parse_args(argv)
        from .training import train
        return train(args.experiment, device=args.device, seed=args.seed, resume=args.resume,
                     progress=not args.no_progress)
    return _guard(go)


def test_main(argv: Sequence[str] | None = None) -> int:
    from .generation import TYPES
    p = _Parser(prog="test.py", description="Reconstruct learned sequences or generate new ones as SDF grids "
                "(ReconstructionDims × ReconstructionFramesPerSequence of specs.json).",
                epilog="example: python test.py -x experiments/demo -t reconstruct -e latest")
    p.add_argument("-x", "--experiment", required=True, help="experiment folder holding specs.json")
    p.add_argument("-t", "--type", required=True, metavar="TYPE", help=" | ".join(TYPES))
    p.add_argument("-e", "--epoch", help="epoch N, or latest (default: the no-epoch files model.pth, "
                   "lat_vecs.mat, rot_angs.mat)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if present, else cpu)")
    p.add_argument("--seed", type=int, help="seed of generation (default: drawn and recorded in the files)")
    p.add_argument("--out", help="output folder (default: OUT_reconstruct or OUT_randomgen in the experiment)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from .exports import FILO_THRESHOLD, MESH_FORMATS, MESH_UNITS, parse_voxel_size
    g = p.add_argument_group("exports, beside each output file in <out>/<file stem>/")
    g.add_argument("--tif", action="store_true", help="binary TIFF per frame and an ImageJ hyperstack (TZYX)")
    g.add_argument("--png", action="store_true", help="MIP preview per frame and a contact sheet")
    g.add_argument("--mesh", choices=MESH_FORMATS, help="marching-cubes surface per frame")
    g.add_argument("--threshold", type=float, default=0.0,
                   help=f"the cell is sdf <= threshold (default 0; the original uses {FILO_THRESHOLD} "
                        "for filopodial cells)")
    g.add_argument("--mesh-units", choices=MESH_UNITS, default="normalised",
                   help="mesh coordinates: the [-1, 1] cube (default), voxels, or um (needs --voxel-size)")
    g.add_argument("--voxel-size", type=parse_voxel_size, metavar="UM",
                   help="voxel size in um, 0.2 or 0.2,0.2,0.5 along X, Y, Z (calibrates TIFFs and um meshes)")

    def go() -> int:
        args = p.parse_args(argv)
        from .generation import Exports, run
        exports = Exports(args.tif, args.png, args.mesh, args.threshold, args.mesh_units, args.voxel_size)
        if args.mesh_units == "um" and args.voxel_size is None:
            raise UserError("--mesh-units um: needs --voxel-size")
        run(args.experiment, args.type, epoch=args.epoch, device=args.device, seed=args.seed,
            out_dir=args.out, progress=not args.no_progress, exports=exports)
        return 0
    return _guard(go)
