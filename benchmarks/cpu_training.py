#!/usr/bin/env python
"""Reconstruction Dice against training time on a CPU: the original's settings and the CPU recipe.

    python benchmarks/cpu_training.py            # both settings, about 20 minutes on 2 cores
    python benchmarks/cpu_training.py --quick    # the recipe only, about 8 minutes

Both train the released architecture (docs/method.md §3) on the same set, made here: six phantom
sequences (two dividing, two filopodial, two deforming cells; ``autodecoder.demo.phantoms``) of
10 frames at 64³, prepared as the demo data are. The settings:

* **original**: ``experiments/plat/specs.json`` (8 frames per batch, 5 % of the voxels per frame,
  decoder rate 1e-4), 40 epochs, a checkpoint every 5;
* **recipe**: ``experiments/cpu/specs.json`` (1 frame per batch, 1 %, fresh points every epoch,
  decoder rate 2e-4 halved every 30 epochs), 90 epochs, a checkpoint every 10.

Every checkpoint is decoded on the training grid and scored against the training masks (mean Dice of
``sdf <= 0`` over all frames, :func:`autodecoder.evaluation.reconstruction.reconstruction`); its time is
the sum of the training epochs before it, as the training log records them (decoding and scoring are
not counted). Runs already finished in ``--workdir`` are reused. Prints one table and writes
``cpu_training.csv`` and ``cpu_training.png`` (Dice against minutes) into ``--workdir``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from autodecoder.cli import base
from autodecoder.demo.run import make_demo_data
from autodecoder.evaluation.reconstruction import reconstruction
from autodecoder.evaluation.report import write_csv
from autodecoder.experiment import workspace as ws
from autodecoder.experiment.specs import read_json
from autodecoder.io.pictures import plt, save_figure
from autodecoder.model import checkpoints
from autodecoder.training import loop

ROOT = Path(__file__).resolve().parent.parent
#: setting → (specs file, epochs, checkpoint interval)
SETTINGS = {"original": (ROOT / "experiments" / "plat" / "specs.json", 40, 5),
            "recipe": (ROOT / "experiments" / "cpu" / "specs.json", 90, 10)}
GRID, FRAMES, SEQUENCES = 64, 10, 6
TARGET_DICE, BUDGET_S = 0.90, 300.0


def log(s: str) -> None:
    print(s, file=sys.stderr, flush=True)


def prepare(exp: Path, specs_file: Path, data: Path, epochs: int, every: int, seed: int, device: str | None,
            **changes) -> None:
    """Write the experiment's specs (the setting's, on the benchmark's data, with ``changes``) and train it
    unless done."""
    specs = read_json(specs_file)
    specs.update({"DataSource": str(data), "NumSequences": SEQUENCES, "NumEpochs": epochs, "LogFrequency": every,
                  "ReconstructionDims": [GRID] * 3, "ReconstructionFramesPerSequence": FRAMES, **changes})
    exp.mkdir(parents=True, exist_ok=True)
    text = json.dumps(specs, indent=1) + "\n"
    if (exp / "specs.json").is_file() and (exp / "specs.json").read_text() != text:
        raise SystemExit(f"{exp}: holds a run of other settings; remove it or choose another --workdir")
    (exp / "specs.json").write_text(text)
    done = checkpoints.load_latest(exp)["completed_epoch"] if ws.latest_file(exp).is_file() else 0
    if done < epochs:
        log(f"{exp.name}: training {epochs} epochs" + (f" (resuming after {done})" if done else ""))
        loop.train(exp, device=device, seed=seed, resume="latest" if done else None, progress=False,
                   log=lambda s: None)


def epoch_seconds(exp: Path) -> list[float]:
    """Seconds of each training epoch, from the training logs (``epoch E / N, …, time S`` lines)."""
    seconds: dict[int, float] = {}
    for path in sorted(exp.glob("*_train_log.txt")):  # a resumed run has several logs
        for m in re.finditer(r"^epoch (\d+) / \d+, .*time ([0-9.]+)$", path.read_text(), re.M):
            seconds[int(m.group(1))] = float(m.group(2))
    return [seconds[e] for e in sorted(seconds)]


def curve(name: str, exp: Path, epochs: int, every: int, device: str | None) -> list[dict]:
    """Dice of every checkpoint of ``exp`` with its cumulative training time."""
    times = epoch_seconds(exp)
    rows = []
    for e in range(every, epochs + 1, every):
        r = reconstruction(exp, epoch=e, device=device, progress=False, log=lambda s: None,
                           out_dir=exp / "evaluation" / f"e{e:04d}")
        rows.append({"setting": name, "epoch": e, "train_s": round(sum(times[:e]), 1),
                     "dice": round(r.summary[-1]["dice"], 4)})
        log(f"{name}: epoch {e}, {rows[-1]['train_s']:.0f} s, Dice {rows[-1]['dice']:.3f}")
    return rows


def plot(rows: list[dict], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for name in dict.fromkeys(r["setting"] for r in rows):
        pts = [r for r in rows if r["setting"] == name]
        ax.plot([r["train_s"] / 60 for r in pts], [r["dice"] for r in pts], "o-", label=name)
    ax.axhline(TARGET_DICE, color="0.6", lw=0.8, ls="--")
    ax.axvline(BUDGET_S / 60, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("training time (min)")
    ax.set_ylabel("mean reconstruction Dice (sdf ≤ 0)")
    ax.set_title("released architecture, 6 × 10 × 64³ phantom cells", fontsize=9)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def summary_lines(rows: list[dict]) -> list[str]:
    lines = [f"{'setting':<10}{'epoch':>7}{'train s':>10}{'Dice':>8}"]
    lines += [f"{r['setting']:<10}{r['epoch']:>7}{r['train_s']:>10.0f}{r['dice']:>8.3f}" for r in rows]
    for name in dict.fromkeys(r["setting"] for r in rows):
        pts = [r for r in rows if r["setting"] == name]
        within = [r for r in pts if r["train_s"] <= BUDGET_S]
        reach = next((r for r in pts if r["dice"] >= TARGET_DICE), None)
        lines.append(f"{name}: best Dice within {BUDGET_S / 60:.0f} min "
                     f"{max((r['dice'] for r in within), default=float('nan')):.3f}; Dice {TARGET_DICE} "
                     + (f"first at epoch {reach['epoch']} after {reach['train_s']:.0f} s" if reach else "not reached"))
    return lines


def build_parser() -> base.Parser:
    p = base.parser("benchmarks/cpu_training.py", __doc__.split("\n\n")[0],
                    ["python benchmarks/cpu_training.py", "python benchmarks/cpu_training.py --quick"])
    p.add_argument("--quick", action="store_true", help="the recipe only")
    p.add_argument("--workdir", default="/tmp/autodecoder_cpu_training", help="data, experiments and results")
    base.add_device(p)
    base.add_seed(p, default=0)
    return p


def measure(work: Path, names: tuple[str, ...] = tuple(SETTINGS), seed: int = 0, device: str | None = None,
            epochs: int | None = None) -> list[dict]:
    """Train the settings ``names`` on the benchmark's set in ``work`` (unless done) and score their checkpoints;
    ``epochs`` shortens every setting (its own folder), with checkpoints at half and at the end."""
    data = work / "data"
    if not list(data.glob("*.h5")):
        make_demo_data(data, grid=GRID, frames=FRAMES, progress=False, log=log)
    rows: list[dict] = []
    for name in names:
        specs_file, n, every = SETTINGS[name]
        exp = work / name
        if epochs is not None:
            n, every, exp = epochs, max(1, epochs // 2), work / f"{name}_{epochs}ep"
        prepare(exp, specs_file, data, n, every, seed, device)
        rows += curve(name, exp, n, every, device)
    return rows


def command(args) -> int:
    t0 = time.time()
    work = Path(args.workdir)
    rows = measure(work, ("recipe",) if args.quick else tuple(SETTINGS), args.seed, args.device)
    write_csv(work / "cpu_training.csv", rows, ("setting", "epoch", "train_s", "dice"))
    picture = plot(rows, work / "cpu_training.png")
    print(f"released architecture, {os.cpu_count()} CPU cores, seed {args.seed}; {time.time() - t0:.0f} s in all "
          f"(training, decoding and scoring); {picture}")
    print("\n".join(summary_lines(rows)))
    return 0


def main(argv: list[str] | None = None) -> int:
    return base.run(build_parser(), command, argv)


if __name__ == "__main__":
    sys.exit(main())
