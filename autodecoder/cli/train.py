"""``python train.py``: train the auto-decoder of an experiment folder from its specs.json."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from autodecoder.cli import base
from autodecoder.training.loop import train
from autodecoder.training.state import ACCEPT_FLAG


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
    p.add_argument(ACCEPT_FLAG, dest="accept_changed_specs", action="store_true",
                   help="with --continue: go on although specs.json changed keys that affect training since "
                        "the run started (each is listed; an interrupted epoch then restarts from its first batch)")
    base.add_safety(p, "the experiment")
    return p


def command(args: argparse.Namespace) -> int:
    base.break_stale_lock(Path(args.experiment), args.break_lock)
    return train(args.experiment, device=args.device, seed=args.seed, resume=args.resume,
                 progress=not args.no_progress, accept_changed_specs=args.accept_changed_specs,
                 ignore_memory=args.ignore_memory)


def main(argv: Sequence[str] | None = None) -> int:
    return base.run(build_parser(), command, argv)
