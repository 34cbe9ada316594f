#!/usr/bin/env python
"""Does the synthetic microscopy help a segmentation network, and what does each synthesis stage buy?

    python benchmarks/segmentation_transfer.py --quick               # a few minutes
    python benchmarks/segmentation_transfer.py                       # under 30 minutes on 2 cores
    python benchmarks/segmentation_transfer.py --test my_ctc_data/   # scored on your annotated data

A small 3-D UNet (MONAI) is trained from scratch on synthetic data made at each stage of the
pipeline — masks only, + PSF, + noise, + texture (the full pipeline), + learned realism — over
several seeds; its predictions become cell instances (interior seeds, watershed on the boundary
class), are written as Cell Tracking Challenge results and scored with py-ctcmetrics (SEG, DET)
against a held-out synthetic dataset (default) or your annotated CTC dataset (``--test``). The
cells are the project's phantom cells (no auto-decoder is trained). How it works, step by step:
``autodecoder/evaluation/transfer.py``. Outputs in ``--out``: ``results.csv`` (every seed),
``summary.csv`` and ``table.md`` (mean ± sd over seeds), ``scores.png``; finished runs are reused
when the benchmark runs again with the same settings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from autodecoder.cli import base
from autodecoder.evaluation.transfer import STAGES, TransferSettings, quick, realism_available, run_transfer
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import REPLACE_FLAG
from autodecoder.experiment.runtime import pick_device


def build_parser() -> base.Parser:
    p = base.parser("benchmarks/segmentation_transfer.py", __doc__.split("\n\n")[0], [
        "python benchmarks/segmentation_transfer.py --quick",
        "python benchmarks/segmentation_transfer.py --stages masks,texture --seeds 5",
        "python benchmarks/segmentation_transfer.py --test real_ctc/ --voxel-size 0.4,0.4,1.0 --out seg_real/",
    ])
    p.add_argument("--quick", action="store_true", help="6 frames, 80 training steps per run (a few minutes)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per stage (default 3)")
    p.add_argument("--stages", help=f"comma-separated, of {','.join(STAGES)} (default: all; realism only when "
                                    "autodecoder/cli/realism.py exists)")
    p.add_argument("--test", metavar="DIR", help="your annotated CTC dataset (01/, 01_GT/SEG and/or 01_GT/TRA); "
                                                 "default: a held-out synthetic dataset")
    p.add_argument("--real-unlabelled", metavar="DIR", help="real images for the learned realism step (CTC dataset "
                   "or folder of TIFF frames; default: the --test images without labels, or a synthetic set)")
    p.add_argument("--voxel-size", type=base.voxel_size, help="µm along x, y, z of the synthetic data "
                   "(default 0.5); match your data's")
    p.add_argument("--cell-size", type=float, help="µm spanned by a phantom cell's cube (default 15: cells "
                   "5–7 µm across, 35–45 %% of it); match your cells")
    p.add_argument("--steps", type=int, help="training steps per run (default 300; --quick 80)")
    p.add_argument("--realism-steps", type=int, help="training steps of the realism step (default 400; --quick 50)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--out", default="/tmp/autodecoder_segmentation_transfer",
                   help="output folder (default %(default)s)")
    p.add_argument(REPLACE_FLAG, action="store_true", help="remove results of other settings in --out first")
    base.add_device(p)
    base.add_progress(p)
    return p


def _stages(text: str | None, log) -> list[str]:
    if text is None:
        if realism_available():
            return list(STAGES)
        log("note: MONAI (the realism extra) is not installed: stage 'realism' left out")
        return [s for s in STAGES if s != "realism"]
    stages = [s.strip() for s in text.split(",") if s.strip()]
    if not stages or any(s not in STAGES for s in stages):
        raise UserError(f"--stages {text}: expected a comma-separated list of {','.join(STAGES)}")
    return stages


def command(args: argparse.Namespace) -> int:
    t0 = time.time()
    load = os.getloadavg()[0]
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731 (the table goes to stdout)
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    device = pick_device(args.device)
    settings = quick(TransferSettings()) if args.quick else TransferSettings()
    seg = settings.segmentation
    if args.steps is not None:
        seg = replace(seg, steps=args.steps)
    settings = replace(settings, segmentation=seg, test=args.test,
                       real_unlabelled=args.real_unlabelled,
                       voxel_size_xyz=args.voxel_size or settings.voxel_size_xyz,
                       cube_size_um=args.cell_size or settings.cube_size_um,
                       realism_steps=args.realism_steps or settings.realism_steps)
    stages = _stages(args.stages, log)
    if args.test and "realism" in stages and not args.real_unlabelled:
        log(f"note: the realism step learns from the images of {args.test} without their labels (unlabelled use)")
    outcome = run_transfer(settings, stages, args.seeds, Path(args.out), device, progress=not args.no_progress,
                           log=log, replace=args.replace)
    print(outcome.note)
    print(outcome.table)
    print(f"\n{len(stages)} stage(s) × {args.seeds} seed(s), {settings.segmentation.steps} steps per run, "
          f"{settings.frames} frames of {'×'.join(map(str, settings.shape_zyx))} voxels (z×y×x); device {device}, "
          f"{torch.get_num_threads()} torch thread(s), load average at start {load:.1f}; "
          f"{(time.time() - t0) / 60:.1f} min in all; tables in {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return base.run(build_parser(), command, argv)


if __name__ == "__main__":
    sys.exit(main())
