"""``python train.py``: train the auto-decoder of an experiment folder from its specs.json."""

from __future__ import annotations

import argparse
from typing import Sequence

from autodecoder.cli import base
from autodecoder.training.loop import train


def build_parser() -> base.Parser:
    p = base.parser("train.py", "Train the SIREN auto-decoder of an experiment folder from its specs.json.", [
        "python train.py -x experiments/demo --device cpu --seed 0",
        "python train.py -x experiments/demo --continue latest      # after Ctrl-C, a crash, or raising NumEpochs",
        "torchrun --standalone --nproc_per_node=N train.py -x EXP    # N GPUs, or N CPU processes with --device cpu",
    ])
    base.add_experiment(p)
    p.add_argument("--continue", dest="resume", metavar="latest|N",
                   help="resume from latest.pth (full state) or from the checkpoint of epoch N")
    base.add_device(p)
    base.add_seed(p)
    base.add_progress(p)
    return p


def command(args: argparse.Namespace) -> int:
    return train(args.experiment, device=args.device, seed=args.seed, resume=args.resume,
                 progress=not args.no_progress)


def main(argv: Sequence[str] | None = None) -> int:
    return base.run(build_parser(), command, argv)
