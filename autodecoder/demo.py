"""The demo, end to end on 2 CPU cores: ``python -m autodecoder.demo``.

1. Make the demo data (if missing): the deterministic phantoms of
   :mod:`autodecoder.phantoms` (six 64³ sequences of 12 frames: two dividing,
   two filopodial, two deforming cells) as SDFs in ``data/demo``.
2. Train ``experiments/demo`` (resumes an unfinished run; skips a finished one
   unless ``--retrain``).
3. ``reconstruct``, ``generate`` and ``generate_filo`` from the last checkpoint.
4. PNG previews (maximum projections of ``sdf <= 0``, one contact sheet per
   sequence) in ``experiments/demo/previews``.
5. Print the Dice between reconstructed and training masks, per sequence, per
   kind of cell and overall.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from . import phantoms
from .errors import UserError
from .io import SequenceFile, list_sequence_files, write_sequence
from .metrics import dice
from .sdf import sdf_sequence

ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = ROOT / "data" / "demo"
DEMO_EXPERIMENT = ROOT / "experiments" / "demo"
#: Outer distance clamp at 64³: 8 voxels, the same share of the grid as the
#: original's 32 voxels at 256³, so 1.0 means the same physical distance.
DEMO_CLAMP = 8.0
DEMO_GRID = 64
DEMO_FRAMES = 12


def make_demo_data(out: Path = DEMO_DATA, grid: int = DEMO_GRID, frames: int = DEMO_FRAMES,
                   clamp: float = DEMO_CLAMP, log=print) -> list[Path]:
    """Write the demo sequences as HDF5 SDF files (training layout) into ``out``; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, masks in phantoms.demo_sequences(grid, frames):
        path = out / f"{name}.h5"
        write_sequence(path, sdf_sequence(masks, clamp=clamp), compression=4,
                       attrs={"generator": "autodecoder.phantoms", "kind": name.split("_")[-1],
                              "clamp_voxels": clamp})
        written.append(path)
    log(f"demo data: {len(written)} sequences ({grid}³ × {frames} frames) in {out}")
    return written


def kind_of(path: Path) -> str:
    """The kind of cell of a demo file, from its name (``seq_000_divide.h5`` → ``divide``)."""
    return path.stem.split("_")[-1]


def reconstruction_dice(data_dir: Path, rec_files: list[Path]) -> list[tuple[str, str, float]]:
    """(file name, kind, mean Dice over frames) per training sequence, reconstructions matched by index.

    Reconstructed files must be on the training grid with the training frame count.
    """
    train_files = list_sequence_files(data_dir, True)
    by_index = {int(p.name.split("_")[2]): p for p in rec_files}
    rows = []
    for i, tf in enumerate(train_files):
        with SequenceFile(tf) as a, SequenceFile(by_index[i]) as b:
            if (a.n_frames, a.grid_shape) != (b.n_frames, b.grid_shape):
                raise UserError(f"{b.path}: {b.n_frames} frames of {b.grid_shape}, but the training file {tf.name} "
                                f"has {a.n_frames} of {a.grid_shape}; decode at the training size to compare")
            d = [dice(fa <= 0, fb <= 0) for fa, fb in zip(a.frames(), b.frames())]
        rows.append((tf.name, kind_of(tf), float(np.mean(d))))
    return rows


def previews(files: list[Path], out: Path) -> None:
    """One contact sheet per file: the maximum projection (along Z) of ``sdf <= 0`` of every frame."""
    from .plots import contact_sheet, mip
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        with SequenceFile(f) as s:
            images = [mip(frame <= 0) for frame in s.frames()]
        contact_sheet(images, out / f"{f.stem}.png", columns=min(len(images), 6))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m autodecoder.demo", description=__doc__.splitlines()[0])
    p.add_argument("--device", help="cpu or cuda (default: cuda if present)")
    p.add_argument("--seed", type=int, default=0, help="training and generation seed (default 0)")
    p.add_argument("--retrain", action="store_true", help="train from scratch even if a finished run exists")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    from . import checkpoints, generation, specs as specs_mod, training, workspace as ws
    from .cli import _guard

    def go() -> int:
        exp = DEMO_EXPERIMENT
        progress = not args.no_progress
        if not list(DEMO_DATA.glob("*.h5")):
            make_demo_data()
        specs = specs_mod.load(exp, specs_mod.TRAIN)
        resume = None
        if args.retrain:
            for d in (ws.MODEL_DIR, ws.CODES_DIR):
                shutil.rmtree(exp / d, ignore_errors=True)
        elif ws.latest_file(exp).is_file():
            st = checkpoints.load_latest(exp)
            resume = "latest"
            if st["completed_epoch"] >= specs["NumEpochs"]:
                print(f"demo: {exp} is already trained ({st['completed_epoch']} epochs); use --retrain to train again")
        code = training.train(exp, device=args.device, seed=args.seed if resume is None else None,
                              resume=resume, progress=progress)
        if code != 0:
            return code
        rec = generation.run(exp, "reconstruct", epoch="latest", device=args.device, seed=args.seed, progress=progress)
        gen = generation.run(exp, "generate", epoch="latest", device=args.device, seed=args.seed, progress=progress)
        filo_out = exp / "OUT_randomgen_filo"
        filo = generation.run(exp, "generate_filo", epoch="latest", device=args.device, seed=args.seed,
                              out_dir=filo_out, progress=progress)
        previews(rec, exp / "previews" / "reconstruct")
        previews(gen, exp / "previews" / "generate")
        previews(filo, exp / "previews" / "generate_filo")
        rows = reconstruction_dice(DEMO_DATA, rec)
        print("\nreconstruction Dice (sdf <= 0) against the training masks")
        print(f"{'sequence':<22}{'kind':<8}{'Dice':>7}")
        for name, kind, d in rows:
            print(f"{name:<22}{kind:<8}{d:7.3f}")
        kinds = sorted({k for _, k, _ in rows})
        for k in kinds:
            print(f"{'mean ' + k:<30}{np.mean([d for _, kk, d in rows if kk == k]):7.3f}")
        print(f"{'mean (all)':<30}{np.mean([d for *_, d in rows]):7.3f}")
        print(f"previews: {exp / 'previews'}; loss curve: {ws.loss_plot_file(exp)}")
        return 0
    return _guard(go)


if __name__ == "__main__":
    sys.exit(main())
