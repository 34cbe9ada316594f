"""``python realism.py train|apply``: the learned realism step (:mod:`autodecoder.realism`, docs/realism.md)."""

from __future__ import annotations

import argparse
from typing import Sequence

from autodecoder.cli import base
from autodecoder.experiment.guards import REPLACE_FLAG
from autodecoder.realism.apply import apply
from autodecoder.realism.networks import require_monai
from autodecoder.realism.train import train

EXAMPLES = ("python realism.py train --real my_recordings/ --synthetic synthetic/ --out realism_run",
            "python realism.py train --real my_ctc/ --paired --dims 2 --out realism_paired --device cuda",
            "python realism.py train --real my_recordings/ --synthetic synthetic/ --out realism_run --resume",
            "python realism.py apply --model realism_run synthetic/ --out synthetic_realistic")


def _train_options(p: argparse.ArgumentParser) -> None:
    """The options of ``realism.py train``."""
    p.add_argument("--real", required=True, metavar="DIR", help="real recordings: a folder of 3-D TIFF/OME-TIFF "
                   "frames, a 4-D stack (T, Z, Y, X) or a CTC dataset (masks from its _GT folder)")
    p.add_argument("--synthetic", metavar="DIR", help="synthetic images, in any of the same forms (required "
                   "unpaired; paired: optional, checked to hold the masks that apply will translate)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder: checkpoint.pth, realism.json, "
                   "loss.png")
    p.add_argument("--real-masks", metavar="DIR", help="instance masks of the real images (paired): a folder of 3-D "
                   "mask TIFFs or a 4-D stack (default: found with the images)")
    p.add_argument("--paired", action="store_true", help="learn masks → image from real images and their masks "
                   "(pix2pix-style) instead of synthetic ↔ real without pairs (CycleGAN-style, the default)")
    p.add_argument("--dims", type=int, choices=(2, 3), help="3: volumes (default); 2: z slices")
    p.add_argument("--patch", type=int, help="patch edge in voxels (default 32 in 3-D, 64 in 2-D)")
    p.add_argument("--steps", type=int, help="training steps (default 5000; raise it with --resume to go on)")
    p.add_argument("--batch", type=int, help="patches per step (default 2 in 3-D, 8 in 2-D)")
    p.add_argument("--config", metavar="FILE.json", help="any realism settings (see docs/realism.md); the "
                   "flags above override it")
    p.add_argument("--resume", action="store_true", help="go on from the run folder's checkpoint (after Ctrl-C, "
                   "a crash, or to train more steps)")
    base.add_device(p)
    base.add_seed(p)
    base.add_progress(p)
    base.add_safety(p, "the run folder")


def _apply_options(p: argparse.ArgumentParser) -> None:
    """The options of ``realism.py apply``."""
    p.add_argument("--model", required=True, metavar="RUN_DIR", help="a run folder of realism.py train")
    p.add_argument("input", metavar="INPUT", help="synthetic images: a CTC dataset (or sequence folder), a folder "
                   "of 3-D TIFF frames or a 4-D stack")
    p.add_argument("--out", required=True, metavar="OUTPUT", help="output folder: the same layout, images "
                   "translated, ground truth copied unchanged")
    p.add_argument("--tile", type=int, help="window edge in voxels, halo included (default 192 in 3-D, 1024 in 2-D; "
                   "larger is faster and needs more memory)")
    p.add_argument(REPLACE_FLAG, action="store_true", help="remove an earlier output of apply in --out first")
    base.add_device(p)
    base.add_progress(p)
    base.add_safety(p, "the output folder")


def build_parser() -> base.Parser:
    """``realism.py`` with its two modes."""
    p = base.parser("realism.py", "The learned realism step: make synthetic microscopy look like your real "
                    "recordings (docs/realism.md).", EXAMPLES)
    sub = base.subcommands(p)
    _train_options(sub.add_parser("train", help="learn synthetic → real (unpaired) or masks → real (--paired)"))
    _apply_options(sub.add_parser("apply", help="translate a synthetic dataset; ground truth copied unchanged"))
    return p


def command(args: argparse.Namespace) -> int:
    """Run the chosen mode."""
    require_monai()
    if args.mode == "train":
        base.break_stale_lock(args.out, args.break_lock)
        overrides = {"mode": "paired" if args.paired else None, "dims": args.dims, "patch": args.patch,
                     "steps": args.steps, "batch": args.batch, "seed": args.seed}
        return train(args.real, args.synthetic, args.out, config_path=args.config, overrides=overrides,
                     real_masks=args.real_masks, resume=args.resume, device=args.device,
                     progress=not args.no_progress, ignore_memory=args.ignore_memory)
    base.break_stale_lock(args.out, args.break_lock)
    apply(args.model, args.input, args.out, tile=args.tile, device=args.device, replace=args.replace,
          progress=not args.no_progress, ignore_memory=args.ignore_memory)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python realism.py …``; returns the exit status."""
    return base.run(build_parser(), command, argv)
