"""The demo, end to end on 2 CPU cores: ``python -m autodecoder.demo``.

1. Make the demo data (if missing), through the real preparation path: the
   deterministic phantoms of :mod:`autodecoder.demo.phantoms` (six 64³ sequences of
   12 frames: two dividing, two filopodial, two deforming cells) are written as
   CytoPacq-style mask TIFFs (``data/demo/masks``), then converted to training
   SDFs in ``data/demo`` by the port of ``voxvol_to_sdf.m`` (:mod:`autodecoder.io.prepare`).
2. Train ``experiments/demo`` (resumes an unfinished run; reuses a finished one
   unless ``--retrain``).
3. ``reconstruct`` the learned cells and ``sample`` as many new ones (codes drawn from the
   distribution fitted to the learned codes, the project's default prior; orientations uniform on
   SO(3)) from the last training state, with PNG previews (maximum projection of ``sdf <= 0`` per frame and a contact sheet)
   beside each output file.
4. Print the Dice between reconstructed and training masks, per sequence, per
   kind of cell and overall.
5. Write shape-descriptor reports (``experiments/demo/evaluation/*/report.md``)
   comparing the reconstructed and the new (sampled) cells with the training cells.
6. Synthesise a small microscopy dataset from the trained model (its first three learned cells,
   one of each kind, decoded by the network on the image grid; its 12 frames; Cell Tracking
   Challenge layout and OME-TIFF) in ``experiments/demo/synthetic``, with a picture of one frame
   (image, labels, lineage).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from autodecoder.cli import base
from autodecoder.decoding import run as generation
from autodecoder.decoding.options import Exports
from autodecoder.demo.masks import write_cytopacq_masks
from autodecoder.evaluation.compare import compare
from autodecoder.evaluation.reconstruction import score_files
from autodecoder.experiment import specs as specs_mod
from autodecoder.experiment import workspace as ws
from autodecoder.io.discovery import list_sequence_files
from autodecoder.demo.masks import convert_demo_masks
from autodecoder.microscopy.config import build_config
from autodecoder.microscopy.figures import dataset_figure
from autodecoder.microscopy.run import ModelSource, synthesize
from autodecoder.model import checkpoints
from autodecoder.training import loop as training

ROOT = Path(__file__).resolve().parents[2]
DEMO_DATA = ROOT / "data" / "demo"
DEMO_MASKS = DEMO_DATA / "masks"
DEMO_EXPERIMENT = ROOT / "experiments" / "demo"
#: Outer distance clamp at 64³: 8 voxels, the same share of the grid as the
#: original's 32 voxels at 256³, so 1.0 means the same relative distance.
DEMO_CLAMP = 8.0
DEMO_GRID = 64
DEMO_FRAMES = 12


def make_demo_data(out: Path = DEMO_DATA, grid: int = DEMO_GRID, frames: int = DEMO_FRAMES,
                   clamp: float = DEMO_CLAMP, progress: bool = True, log: Callable[[str], None] = print) -> list[Path]:
    """Write the demo masks as CytoPacq-style TIFFs and prepare them as the port of ``voxvol_to_sdf.m``
    does (:func:`autodecoder.io.prepare.convert_demo_masks`).

    Returns the training files ``<out>/seq_00N_<kind>.h5``.
    """
    masks = out / "masks"
    write_cytopacq_masks(masks, grid=grid, frames=frames)
    files = convert_demo_masks(masks, out, grid=grid, clamp=clamp, progress=progress, log=lambda s: None)
    log(f"demo data: {len(files)} sequences ({grid}³ × {frames} frames) from the masks in {masks} → {out}")
    return files


def kind_of(path: Path) -> str:
    """The kind of cell of a demo file, from its name (``seq_000_divide.h5`` → ``divide``)."""
    return Path(path).stem.split("_")[-1]


def dice_table(rows: list[dict]) -> str:
    """Mean Dice per sequence, per kind of cell and overall, as printed by the demo."""
    files = list(dict.fromkeys(r["file"] for r in rows))
    per_file = {f: float(np.mean([r["dice"] for r in rows if r["file"] == f])) for f in files}
    lines = ["reconstruction Dice (sdf <= 0) against the training masks", f"{'sequence':<22}{'kind':<8}{'Dice':>7}"]
    lines += [f"{f:<22}{kind_of(Path(f)):<8}{d:7.3f}" for f, d in per_file.items()]
    for k in dict.fromkeys(kind_of(Path(f)) for f in files):
        lines.append(f"{'mean ' + k:<30}{np.mean([d for f, d in per_file.items() if kind_of(Path(f)) == k]):7.3f}")
    lines.append(f"{'mean (all)':<30}{np.mean(list(per_file.values())):7.3f}")
    return "\n".join(lines)


def _train(exp: Path, args: argparse.Namespace, progress: bool) -> int:
    """Train the demo experiment: resume an unfinished run, reuse a finished one unless ``--retrain``."""
    specs = specs_mod.load(exp, specs_mod.TRAIN)
    resume = None
    if args.retrain:
        for d in (ws.MODEL_DIR, ws.CODES_DIR):
            shutil.rmtree(exp / d, ignore_errors=True)
    elif ws.latest_file(exp).is_file():
        resume = "latest"
        done = checkpoints.load_latest(exp)["completed_epoch"]
        if done >= specs["NumEpochs"]:
            print(f"demo: {exp} is already trained ({done} epochs); --retrain trains it again")
    return training.train(exp, device=args.device, seed=args.seed if resume is None else None,
                          resume=resume, progress=progress)


def command(args: argparse.Namespace) -> int:
    """Data (if missing), training, reconstruction and sampling of new cells, Dice and shape reports."""
    exp = DEMO_EXPERIMENT
    progress = not args.no_progress
    if not list(DEMO_DATA.glob("*.h5")):
        make_demo_data(progress=progress)
    code = _train(exp, args, progress)
    if code != 0:
        return code
    pngs = Exports(png=True)
    rec = generation.run(exp, "reconstruct", epoch="latest", device=args.device, seed=args.seed,
                         progress=progress, exports=pngs)
    # new cells come from ``sample`` (the fitted prior), not the original's ``generate``, whose
    # N(0, 0.001²) codes all decode to nearly the mean shape (docs/method.md, "Drawing new cells")
    gen = generation.run(exp, "sample", epoch="latest", device=args.device, seed=args.seed,
                         progress=progress, exports=pngs)
    train_files = list_sequence_files(DEMO_DATA, True)
    reports = [
        compare(train_files, rec, exp / "evaluation" / "reconstructed", names=("training", "reconstructed"),
                progress=progress).report,
        compare(train_files, gen, exp / "evaluation" / "generated", names=("training", "generated"),
                progress=progress).report,
    ]
    print()
    print(dice_table(score_files(train_files, rec)))
    print(f"previews: {exp / ws.OUT_DIRS['reconstruct']}/*/png, {exp / ws.OUT_DIRS['sample']}/*/png")
    print(f"loss curve: {ws.loss_plot_file(exp)}")
    print("shape reports: " + ", ".join(str(r) for r in reports))
    picture = synthesize_demo(exp, args, progress)
    print(f"synthetic microscopy: {exp / SYNTHETIC} (CTC layout, OME-TIFF); one frame: {picture}")
    return 0


#: The demo's synthetic microscopy: a 44 × 44 × 24 µm field, its three first learned cells (one of each kind:
#: dividing, filopodial, deforming; 10–20 µm across), its 12 frames, each cell at its own phase.
SYNTHETIC = "synthetic"
SYNTHETIC_CONFIG = {"field": {"shape_zyx": [48, 176, 176], "voxel_size_xyz": [0.25, 0.25, 0.5], "frames": DEMO_FRAMES,
                              "cube_size_um": 20.0},
                    "cells": {"count": 3}, "scene": {"offset_frames": 3}}


def synthesize_demo(exp: Path, args: argparse.Namespace, progress: bool) -> Path:
    """Write the demo's synthetic dataset (replacing an earlier one) and its picture; returns the picture."""
    out = exp / SYNTHETIC
    source = ModelSource(exp, "latest", args.device, "reconstruct", None, adaptive=True)
    synthesize(source, build_config(overrides=SYNTHETIC_CONFIG), out, args.seed, progress=progress, replace=True)
    return dataset_figure(out, out / "frame.png")


def build_parser() -> base.Parser:
    """``python -m autodecoder.demo``."""
    p = base.parser("python -m autodecoder.demo", __doc__.splitlines()[0],
                    ("python -m autodecoder.demo", "python -m autodecoder.demo --retrain --seed 1"))
    base.add_device(p)
    base.add_seed(p, default=0)
    p.add_argument("--retrain", action="store_true", help="train from scratch even if a finished run exists")
    base.add_progress(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    return base.run(build_parser(), command, argv)


if __name__ == "__main__":
    sys.exit(main())
