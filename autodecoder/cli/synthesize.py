"""``python synthesize.py``: synthetic 3D+t fluorescence microscopy with exact ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from autodecoder.cli import base
from autodecoder.decoding.options import LatentOptions, check_shard
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import REPLACE_FLAG
from autodecoder.experiment.runtime import resolve_seed
from autodecoder.microscopy.config import PRESETS, build_config
from autodecoder.microscopy.run import CELL_TYPES, FileSource, ModelSource, synthesize


def build_parser() -> base.Parser:
    p = base.parser("synthesize.py", "Synthetic 3D+t fluorescence images with exact ground truth (instance masks, "
                    "lineage) from a trained shape model or from SDF/mask files, as Cell Tracking Challenge "
                    "datasets, OME-TIFF (and OME-Zarr) and 2-D projections.", [
                        "python synthesize.py -x experiments/demo -e latest --out synthetic/ --seed 0",
                        "python synthesize.py -x experiments/filo -t generate_filo --threshold 0.035 "
                        "--preset confocal-low-snr --out filo_data/",
                        "python synthesize.py --inputs data/demo --config my_microscope.json --out from_files/",
                        "python synthesize.py -x experiments/demo -e latest --sequences 8 --seed 3 --shard 0/4 --out big/",
                    ])
    src = p.add_argument_group("cells from a trained model (test.py's options) or from files")
    base.add_experiment(src, required=False)
    base.add_epoch(src)
    src.add_argument("-t", "--type", default="sample", choices=CELL_TYPES,
                     help="how the model's cells are drawn (default sample; reconstruct: the first --num learned)")
    src.add_argument("--temperature", type=float, help="-t sample: spread of the draws (default 1)")
    src.add_argument("--inputs", nargs="+", metavar="PATH", help="SDF sequences (.h5/.mat) and mask TIFF folders "
                     "or stacks instead of a model (each grid spans the model cube)")
    p.add_argument("--num", type=int, help="cells per sequence (default: cells.count of the configuration, 4)")
    p.add_argument("--threshold", type=float, help="the cell is sdf <= THRESHOLD (default 0; 0.035 for filopodia)")
    p.add_argument("--config", metavar="FILE.json", help="synthesis settings (see docs/synthesis.md)")
    p.add_argument("--preset", choices=tuple(PRESETS), help="optics and noise preset")
    p.add_argument("--frames", type=int, help="frames per sequence (default 30)")
    p.add_argument("--sequences", type=int, help="sequences 01, 02, … (default 1)")
    p.add_argument("--save-interim", action="store_true", help="also write each stage: labels, phantom, blurred, noisy")
    p.add_argument("--no-psf", action="store_true", help="leave out the optics (a delta PSF)")
    p.add_argument("--no-noise", action="store_true", help="leave out the camera noise (expected values)")
    p.add_argument("--no-texture", action="store_true", help="uniform compartments, no texture")
    p.add_argument("--out", required=True, help="output folder of the dataset")
    p.add_argument(REPLACE_FLAG, action="store_true", help="remove a dataset already in --out first")
    base.add_shard(p, "sequences", "synthesize.py")
    base.add_device(p)
    base.add_seed(p)
    base.add_progress(p)
    return p


def _overrides(args: argparse.Namespace) -> dict:
    over: dict = {"cells": {}, "field": {}, "output": {}, "optics": {}, "camera": {}, "phantom": {}}
    for section, key, value in (("cells", "count", args.num), ("cells", "threshold", args.threshold),
                                ("field", "frames", args.frames), ("output", "sequences", args.sequences)):
        if value is not None:
            over[section][key] = value
    if args.save_interim:
        over["output"]["save_interim"] = True
    for flag, section, key in ((args.no_psf, "optics", "psf"), (args.no_noise, "camera", "noise"),
                               (args.no_texture, "phantom", "texture")):
        if flag:
            over[section][key] = False
    return over


def command(args: argparse.Namespace) -> int:
    if (args.experiment is None) == (args.inputs is None):
        raise UserError("synthesize.py: give the cells either from a model (-x EXPERIMENT) or from files (--inputs)")
    shard, device, progress = base.shard_device_progress(args)
    check_shard(shard, "synthesis", args.seed, args.replace)
    config = build_config(args.config, args.preset, _overrides(args))
    seed = resolve_seed(args.seed)
    if args.inputs:
        source = FileSource(args.inputs)
    else:
        options = LatentOptions(temperature=args.temperature) if args.type == "sample" else None
        if args.temperature is not None and args.type != "sample":
            raise UserError("--temperature: only used by -t sample")
        source = ModelSource(args.experiment, args.epoch, device, args.type, options, config.cells.adaptive)
    synthesize(source, config, Path(args.out), seed, progress=progress, replace=args.replace, shard=shard)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return base.run(build_parser(), command, argv)
