#!/usr/bin/env python
"""Paper-size decoding on a CPU: one new 256³ × 30-frame cell, wall time and file size per output mode.

    python benchmarks/paper_size.py            # about 17 minutes on 2 cores, 6 of them training
    python benchmarks/paper_size.py --quick    # about 3 minutes: 15 epochs, 3 frames scaled to 30

The model has the released architecture (docs/method.md §3) and is trained here with the CPU recipe
(``experiments/cpu/specs.json``, 0.25 % of the voxels per step) on a synthetic set made here: six
phantom sequences (two dividing, two filopodial, two deforming cells; ``autodecoder.demo.phantoms``) of
10 frames at 128³, SDF clamped at 16 voxels, i.e. the paper's 32 voxels at 256³, so that a decoding at
256³ sees the paper's SDF scale. Trained models in ``--workdir`` are reused.

Then ``test.py -x MODEL -e latest -t sample --num 1 --seed 0`` decodes one new cell at 256³ × 30 frames,
each mode in its own process, timed from start to exit (start-up, loading, decoding, writing):

* ``--adaptive``: adaptive extraction, compact file (its default);
* ``--adaptive --store dense``: the adaptive values on every voxel;
* ``--adaptive --store mask``: uint8 masks;
* dense decoding: three frames (first, last, middle; ``--quick``: one) of the same cell decoded on
  every voxel and written as ``test.py --dense`` writes them; time and size per frame × 30.

The compact file's masks ``sdf <= 0`` and ``sdf <= 0.035`` are compared with those of the dense
frames, voxel for voxel (``benchmarks/validate_adaptive.py`` checks many more frames and cells).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from autodecoder.cli import base
from autodecoder.decoding.trained import load_model
from autodecoder.demo.run import make_demo_data
from autodecoder.io.exports import FILO_THRESHOLD
from autodecoder.io.sequences import SequenceFile, SequenceWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpu_training  # noqa: E402  (the benchmarks' shared training step)

ROOT = Path(__file__).resolve().parent.parent
GRID, FRAMES, TRAIN_GRID, TRAIN_FRAMES = 256, 30, 128, 10
#: 0.25 % of 128³: about 5,200 points per step (the recipe's 1 % of 64³ is 2,600)
FRACTION = 0.0025
#: (epochs, frames decoded, frames decoded densely) of a full and a quick run
FULL, QUICK = (90, FRAMES, 3), (15, 3, 1)
#: output folder → (row label, test.py options)
MODES = {"compact": ("adaptive, compact (default of --adaptive)", ["--adaptive"]),
         "adaptive_dense": ("adaptive, --store dense", ["--adaptive", "--store", "dense"]),
         "mask": ("adaptive, --store mask", ["--adaptive", "--store", "mask"])}
TARGET_S, TARGET_MB = 180.0, 100.0


def log(s: str) -> None:
    print(s, file=sys.stderr, flush=True)


def train_model(work: Path, epochs: int, frames: int, seed: int, device: str | None) -> Path:
    """The released-architecture model on the 128³ set (made and trained unless already in ``work``)."""
    data = work / f"data{TRAIN_GRID}"
    if not list(data.glob("*.h5")):
        make_demo_data(data, grid=TRAIN_GRID, frames=TRAIN_FRAMES, clamp=16.0, progress=False, log=log)
    exp = work / f"released_{epochs}ep_{frames}fr"
    t0 = time.time()
    cpu_training.prepare(exp, cpu_training.SETTINGS["recipe"][0], data, epochs, 10, seed, device,
                         TrainSampleFraction=FRACTION, ReconstructionDims=[GRID] * 3,
                         ReconstructionFramesPerSequence=frames)
    log(f"model ready in {exp} ({time.time() - t0:.0f} s)")
    return exp


def run_test(exp: Path, out: Path, extra: list[str], device: str | None) -> float:
    """Wall time of one ``test.py -t sample --num 1 --seed 0`` into ``out``."""
    cmd = [sys.executable, str(ROOT / "test.py"), "-x", str(exp), "-e", "latest", "-t", "sample", "--num", "1",
           "--seed", "0", "--out", str(out), "--replace", "--no-progress", *extra]
    if device:
        cmd += ["--device", device]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    took = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return took


def only_file(folder: Path) -> Path:
    files = sorted(folder.glob("*.h5"))
    if len(files) != 1:
        raise RuntimeError(f"{folder}: expected one .h5 file, found {len(files)}")
    return files[0]


def dense_frames(exp: Path, compact: Path, frames: int, n_dense: int, out: Path, device: str | None) -> dict:
    """Decode ``n_dense`` frames (first, last, middle) of the compact file's cell densely, write them as a dense
    file, compare their masks with the compact file's."""
    with h5py.File(compact, "r") as f:
        code = np.asarray(f.attrs["code"], dtype=np.float32)
        angles = np.asarray(f.attrs["rotation_angles"], dtype=np.float32)
    which = sorted(set([0, frames - 1, frames // 2][:n_dense]))
    model = load_model(exp, "latest", device)
    t0 = time.perf_counter()
    dense = list(model.frames(code, angles, (GRID,) * 3, frames, frames=which))
    t_decode = time.perf_counter() - t0
    t0 = time.perf_counter()
    path = out / f"dense_{len(which)}_frames.h5"
    with SequenceWriter(path, len(which), (GRID,) * 3) as w:
        for i, d in enumerate(dense):
            w.write_frame(i, d)
    t_write = time.perf_counter() - t0
    differ = 0
    with SequenceFile(compact) as f:
        for t, d in zip(which, dense):
            stored = f.frame(t)
            differ += sum(int(np.sum((d <= v) != (stored <= v))) for v in (0.0, FILO_THRESHOLD))
    return {"s_per_frame": (t_decode + t_write) / len(which), "mb_per_frame": path.stat().st_size / 1e6 / len(which),
            "frames_checked": len(which), "voxels_differ": differ}


def measure(work: Path, quick: bool = False, seed: int = 0, device: str | None = None) -> dict:
    """Train (unless cached) and time every mode; the numbers of :func:`table_lines`."""
    epochs, frames, n_dense = QUICK if quick else FULL
    exp = train_model(work, epochs, frames, seed, device)
    res: dict = {"epochs": epochs, "frames": frames, "modes": {}, "load_before": os.getloadavg()[0]}
    for key, (label, extra) in MODES.items():
        out = work / "out" / key
        log(f"decoding: {label}")
        took = run_test(exp, out, extra, device)
        res["modes"][label] = {"s": took, "mb": only_file(out).stat().st_size / 1e6, "file": str(only_file(out))}
    log(f"decoding: dense, {n_dense} frame(s)")
    compact = only_file(work / "out" / "compact")
    res["dense"] = dense_frames(exp, compact, frames, n_dense, work / "out", device)
    res["load_after"] = os.getloadavg()[0]
    return res


def table_lines(res: dict) -> list[str]:
    """One row per mode: time and size for 256³ × 30 frames (measured, or scaled from the frames decoded)."""
    scale = FRAMES / res["frames"]
    how = "measured" if scale == 1 else f"{res['frames']} frames × {scale:g} (start-up counted {scale:g}×)"
    lines = [f"{f'{GRID}³ × {FRAMES} frames, test.py -t sample':44}{'time':>12}{'size (MB)':>12}  how"]
    for name, r in res["modes"].items():
        lines.append(f"{name:44}{minutes(r['s'] * scale):>12}{r['mb'] * scale:>12,.1f}  {how}")
    d = res["dense"]
    lines.append(f"{'dense decoding (--dense)':44}{minutes(d['s_per_frame'] * FRAMES):>12}"
                 f"{d['mb_per_frame'] * FRAMES:>12,.1f}  {plural(d['frames_checked'], 'frame')} × "
                 f"{FRAMES / d['frames_checked']:g}"
                 f" (decoding and writing)")
    lines.append(f"compact masks at 0 and {FILO_THRESHOLD:g} against dense on {plural(d['frames_checked'], 'frame')}: "
                 f"{d['voxels_differ']} voxels differ; targets: ≤ {TARGET_S / 60:g} min and ≤ {TARGET_MB:g} MB "
                 f"(adaptive, compact); model trained {res['epochs']} epochs; load average "
                 f"{res['load_before']:.1f} before, {res['load_after']:.1f} after")
    return lines


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def minutes(s: float) -> str:
    s = round(s)
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def build_parser() -> base.Parser:
    p = base.parser("benchmarks/paper_size.py", __doc__.split("\n\n")[0],
                    ["python benchmarks/paper_size.py", "python benchmarks/paper_size.py --quick"])
    p.add_argument("--quick", action="store_true", help=f"{QUICK[0]} epochs of training, {QUICK[1]} frames "
                   "decoded and scaled to 30")
    p.add_argument("--workdir", default="/tmp/autodecoder_paper_size", help="data, model and outputs")
    base.add_device(p)
    base.add_seed(p, default=0)
    return p


def command(args) -> int:
    t0 = time.time()
    res = measure(Path(args.workdir), args.quick, args.seed, args.device)
    print(f"released architecture, {os.cpu_count()} CPU cores; {time.time() - t0:.0f} s in all")
    print("\n".join(table_lines(res)))
    return 0


def main(argv: list[str] | None = None) -> int:
    return base.run(build_parser(), command, argv)


if __name__ == "__main__":
    sys.exit(main())
