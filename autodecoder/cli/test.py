"""``python test.py``: decode SDF grids of a trained experiment (reconstruct, generate, …)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from autodecoder.cli import base
from autodecoder.decoding.options import DEFAULT_PRIOR, PRIOR_NAMES, TYPES, Exports, LatentOptions, check_options
from autodecoder.decoding.run import run
from autodecoder.experiment.guards import REPLACE_FLAG
from autodecoder.experiment.workspace import output_dir
from autodecoder.io.exports import FILO_THRESHOLD, MESH_FORMATS, MESH_UNITS, check_mesh_options
from autodecoder.io.sequences import COMPACT_BAND, COMPACT_OUTSIDE, STORES


def build_parser() -> base.Parser:
    p = base.parser("test.py", "Reconstruct learned sequences or generate new ones as SDF grids "
                    "(ReconstructionDims × ReconstructionFramesPerSequence of specs.json); sample new cells from "
                    "the learned distribution, fit the model to an unseen cell, interpolate between learned cells.", [
                        "python test.py -x experiments/demo -t reconstruct -e latest",
                        "python test.py -x experiments/demo -e latest -t sample --num 8 --temperature 0.8",
                        "python test.py -x experiments/demo -e latest -t fit --target cell.h5",
                        "python test.py -x experiments/demo -e latest -t interpolate --from 0 --to 3 --steps 6",
                        "python test.py -x experiments/filo -t generate_filo --tif --threshold 0.035",
                        "python test.py -x experiments/demo -e latest -t generate --seed 1 --adaptive --shard 0/4",
                    ])
    base.add_experiment(p)
    p.add_argument("-t", "--type", required=True, metavar="TYPE", help=" | ".join(TYPES))
    base.add_epoch(p)
    base.add_device(p)
    p.add_argument("--seed", type=int, help="seed of generation (default: drawn and recorded in the files)")
    p.add_argument("--out", help="output folder (default: OUT_reconstruct, OUT_randomgen, OUT_sample, OUT_fit or "
                   "OUT_interpolate in the experiment)")
    base.add_progress(p)
    p.add_argument(REPLACE_FLAG, action="store_true", help="the output folder holds outputs of another "
                   "experiment, checkpoint, epoch or type: remove them (and their exports) first")
    base.add_safety(p, "the output folder")
    ex = p.add_mutually_exclusive_group()  # adaptive extraction (autodecoder/decoding/adaptive.py)
    ex.add_argument("--adaptive", action="store_true", help="decode densely only near the surface (sdf = 0 and "
                    "--threshold): same masks and meshes, far fewer network evaluations; SDF values away from "
                    "the surface are interpolated (see experiments/README.md)")
    ex.add_argument("--dense", dest="adaptive", action="store_false", help="decode every voxel (the default)")
    _storage_options(p)
    _latent_options(p)
    g = p.add_argument_group("exports, beside each output file in <out>/<file stem>/")
    g.add_argument("--tif", action="store_true", help="binary TIFF per frame and an ImageJ hyperstack (TZYX)")
    g.add_argument("--png", action="store_true", help="MIP preview per frame and a contact sheet")
    g.add_argument("--mesh", choices=MESH_FORMATS, help="marching-cubes surface per frame")
    g.add_argument("--threshold", type=float, default=0.0, help="the cell is sdf <= threshold (default 0; the "
                   f"original uses {FILO_THRESHOLD} for filopodial cells)")
    g.add_argument("--mesh-units", choices=MESH_UNITS, default="normalised",
                   help="mesh coordinates: the [-1, 1] cube (default), voxels, or um (needs --voxel-size)")
    g.add_argument("--voxel-size", type=base.voxel_size, metavar="UM",
                   help="voxel size in um, 0.2 or 0.2,0.2,0.5 along X, Y, Z (calibrates TIFFs and um meshes)")
    return p


def _storage_options(p: base.Parser) -> None:
    st = p.add_argument_group("what is stored, and sharding (docs/method.md §5)")
    st.add_argument("--store", choices=STORES, help="dense: every voxel's SDF value (default without --adaptive); "
                    "compact (default with --adaptive): the values where sdf <= max(0.035, --threshold) and in a "
                    f"band of --band voxels around it, {COMPACT_OUTSIDE:g} farther out; the same sdf_vid layout, "
                    "gzip + shuffle, masks at 0, 0.035 and --threshold unchanged, far smaller files; mask: uint8 "
                    "mask_vid, 1 where sdf <= --threshold (no exports)")
    st.add_argument("--band", type=int, metavar="B", help=f"--store compact: voxels kept beyond the cell (default "
                    f"{COMPACT_BAND}: past sdf 0.1, the fit's clamp, on 256³ grids)")
    base.add_shard(st, "sequences", "test.py")  # files carry no 'created' attribute, so shards match one run


def _latent_options(p: base.Parser) -> None:
    ls = p.add_argument_group("-t sample: codes from a prior fitted to the learned codes, rotations uniform on SO(3)")
    ls.add_argument("--prior", choices=PRIOR_NAMES, help=f"gaussian: one Gaussian; gmm: a Gaussian mixture; kde: a "
                    f"kernel density; mix: points between neighbouring learned codes (the last three in the codes' "
                    f"PCA subspace); saved as latent_codes/…latent_<prior>.npz "
                    f"(default {DEFAULT_PRIOR}; see autodecoder/decoding/priors/)")
    ls.add_argument("--temperature", type=float, metavar="T",
                    help="scale of the spread around each centre: 0 gives the mean code (gaussian), the component "
                    "means (gmm) or copies of the learned codes (kde); 1 the fitted spread (default 1)")
    ls.add_argument("--num", type=int, metavar="N", help="how many sequences (default: NumSequences)")
    ls.add_argument("--pca", type=int, metavar="K", help="keep K principal components of the learned codes "
                    "(default: gaussian: full covariance, Ledoit-Wolf shrinkage when codes <= CodeLength; gmm, kde: "
                    "all directions the codes span)")
    ls.add_argument("--around", metavar="CODE", help="--prior gaussian only: centre the draws on this code, a "
                    "fit_<stem>_code.mat written by -t fit (its angles are kept), or a learned code's row number")
    lf = p.add_argument_group("-t fit: fit a new code (and rotation) to an unseen cell, the decoder frozen")
    lf.add_argument("--target", metavar="FILE", help="SDF sequence (.h5/.mat in the training layout) to fit")
    lf.add_argument("--iterations", type=int, metavar="N", help="optimisation steps (default 800)")
    lf.add_argument("--lr", type=float, help="Adam learning rate of the code (default 0.01; angles: a tenth)")
    lf.add_argument("--clamp", type=float, metavar="D", help="clamp prediction and target at ±D in the loss "
                    "(default: as training, ClampSDFminmax); 0.1 fits thin protrusions better")
    li = p.add_argument_group("-t interpolate: sequences along the path between two learned codes")
    li.add_argument("--from", dest="start", type=int, metavar="I", help="first learned code (row)")
    li.add_argument("--to", dest="end", type=int, metavar="J", help="last learned code (row)")
    li.add_argument("--steps", type=int, metavar="K", help="sequences along the path, both ends included (default 5)")
    li.add_argument("--path", choices=("linear", "slerp"), help="path between the codes (default slerp); "
                    "rotations follow the SO(3) geodesic")


def command(args: argparse.Namespace) -> int:
    shard, device, progress = base.shard_device_progress(args)
    check_mesh_options(args.mesh, args.mesh_units, args.voxel_size)
    exports = Exports(args.tif, args.png, args.mesh, args.threshold, args.mesh_units, args.voxel_size)
    options = check_options(args.type, LatentOptions(args.temperature, args.num, args.pca, args.around, args.target,
                                                     args.start, args.end, args.steps, args.path, args.iterations,
                                                     args.lr, args.clamp, args.prior))
    out = Path(args.out) if args.out else output_dir(Path(args.experiment), args.type)
    base.break_stale_lock(out / shard.lock_folder if shard else out, args.break_lock)
    run(args.experiment, args.type, epoch=args.epoch, device=device, seed=args.seed, out_dir=out,
        progress=progress, exports=exports, options=options, adaptive=args.adaptive,
        replace=args.replace, ignore_memory=args.ignore_memory, store=args.store, band=args.band, shard=shard)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return base.run(build_parser(), command, argv)
