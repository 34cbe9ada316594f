#!/usr/bin/env python
"""Speed and memory of the plain path and the fast path, side by side, in one run.

    python benchmarks/run.py            # about 46 minutes on 2 cores (trained models are cached)
    python benchmarks/run.py --quick    # about 8 minutes

Everything runs on the released architecture (docs/method.md §3: CodeLength 192, dims
[128, 128, 128, 320, 128, 128, 320, 128, 128, 128], latent_in [4, 7],
xyz_in_all), on two data sets: the demo data (``data/demo``, six 64³ × 12-frame
sequences; made if missing) and a synthetic 128³ set generated here (phantom
cells, SDF clamped at 16 voxels, i.e. the paper's 32 at 256³).

Rows:

* training points/s: SDF points per second through ``autodecoder.training.loss.train_step``
  (forward, backward, Adam step, batch assembly included), after one warm-up
  batch, ``FramesPerBatch`` 8 frames of ``TrainSampleFraction`` of the voxels.
  The plain path is the faithful implementation (rows ``[code, x, y, z, t]``,
  one graph per batch, torch's default threads); the fast path is the default
  of this project (split layers, chunks, worker threads).
* peak memory: peak resident set size of a fresh process that loads the set
  and trains those batches (the plain path holds the samples as float32
  ``x, y, z, sdf`` rows, as the original; the fast path as int32 grid indices
  and float32 values); "samples" is what the samples themselves take.
* dense decoding points/s: one frame of the released-architecture checkpoint
  of ``tests/data/reference_experiment`` decoded on a grid, and the largest
  difference between the two paths' outputs.
* adaptive: the demo model (``experiments/demo``, if trained) decoded at
  128³: dense (plain path) against adaptive extraction (fast path), time per
  frame, agreement of the ``sdf <= 0`` masks, lost connected components and
  network evaluations. On the synthetic set, whose model is not trained here,
  the stored SDF itself stands in for the network (agreement and evaluations
  only). ``benchmarks/validate_adaptive.py`` runs the full validation.

* paper-size decoding (``benchmarks/paper_size.py``): one new cell at 256³ × 30 frames from a
  released-architecture model trained here on 128³ cells, wall time and file size of
  ``test.py --adaptive`` (compact, the default), ``--store dense``, ``--store mask``, and dense decoding
  scaled from three frames; ``--quick``: a model trained 15 epochs, 3 frames and one dense frame, scaled.
* Dice against training time (``benchmarks/cpu_training.py``): the original's settings and the CPU
  recipe on 6 × 10 × 64³ phantom cells; ``--quick``: the recipe's first 30 epochs.

Each measurement of a path runs in its own process; times are the best of
``--repeat`` runs (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from autodecoder.cli import base
from autodecoder.decoding.adaptive import decode_adaptive
from autodecoder.decoding.grid import decode_frames
from autodecoder.decoding.trained import load_model
from autodecoder.decoding.types import plan
from autodecoder.demo.phantoms import phantom_sequence
from autodecoder.demo.run import make_demo_data
from autodecoder.experiment.keys import default
from autodecoder.io.mask_sdf import sdf_sequence
from autodecoder.io.sequences import SequenceFile, write_sequence
from autodecoder.model.decoder import Decoder
from autodecoder.training.data import TrainingSet
from autodecoder.training.loss import train_step
from autodecoder.training.schedules import code_regularization_weight, epoch_order

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpu_training  # noqa: E402  (the Dice-against-training-time rows)
import paper_size  # noqa: E402  (the paper-size rows)

ROOT = Path(__file__).resolve().parent.parent

#: epochs of the CPU recipe in ``--quick`` (its curve then ends before the recipe's schedule does)
QUICK_RECIPE_EPOCHS = 30
RELEASED = {"dims": [128, 128, 128, 320, 128, 128, 320, 128, 128, 128], "latent_in": [4, 7], "xyz_in_all": True}
CODE_LENGTH = 192
REFERENCE = ROOT / "tests" / "data" / "reference_experiment"


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------
# workers (each in its own process)

def worker_train(args: argparse.Namespace) -> dict:
    fast = args.path == "fast"
    base = rss_mib()
    data = TrainingSet.from_folder(args.data, True, len(list(Path(args.data).glob("*.h5"))), args.fraction, False, 0,
                       progress=False, layout="compact" if fast else "original")
    torch.manual_seed(0)
    dec = Decoder(CODE_LENGTH, **RELEASED)
    n_seq = len(data.frames_per_sequence)
    codes = torch.nn.Parameter(torch.randn(n_seq, CODE_LENGTH) / CODE_LENGTH ** 0.5)
    angles = torch.nn.Parameter(torch.randn(n_seq, 3) * 0.15)
    opt = torch.optim.Adam([{"params": dec.parameters(), "lr": 1e-4}, {"params": [codes], "lr": 1e-3},
                            {"params": [angles], "lr": 1e-3}])
    specs = {"ClampSDFminmax": False, "ClampingDistance": 0.1, "TrainChunkSize": default("TrainChunkSize")}
    code_weight = code_regularization_weight({"CodeRegularization": True, "CodeRegularizationLambda": 1e-4,
                                              "OptimizeRot": True}, 5)
    order = epoch_order(len(data), 0, 1)
    times, losses = [], []
    for b in range(args.batches + 1):
        items = order[(b * args.fpb) % len(data):][:args.fpb]
        t0 = time.perf_counter()
        batch = data.batch(items, 1)
        dec.zero_grad(set_to_none=True)
        codes.grad = angles.grad = None
        sdf, _ = train_step(dec, codes, angles, batch, specs, code_weight, fast=fast)
        opt.step()
        if b:  # the first batch warms up
            times.append((time.perf_counter() - t0, batch.sdf.numel()))
        losses.append(sdf)
    best = max(n / t for t, n in times)
    return {"points_per_s": best, "peak_mib": peak_mib(), "base_mib": base, "samples_mib": data.nbytes() / 2**20,
            "points_per_batch": times[0][1], "losses": losses, "threads": torch.get_num_threads()}


def worker_decode(args: argparse.Namespace) -> dict:
    tr = load_model(REFERENCE, 10, "cpu")
    dec = tr.decoder
    dims = tuple(args.dims)
    out, best = None, 0.0
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out = next(decode_frames(dec, tr.codes[0], tr.angles[0], dims, 3, 65536, fast=args.path == "fast",
                                 frames=[1]))
        best = max(best, out.size / (time.perf_counter() - t0))
    np.save(args.out, out)
    return {"points_per_s": best, "threads": torch.get_num_threads()}


def worker_adaptive(args: argparse.Namespace) -> dict:
    tr = load_model(args.experiment, args.epoch, "cpu")
    dec = tr.decoder
    job = plan("reconstruct", tr.codes, tr.angles, tr.specs["NumSequences"], 0)[args.seq]
    dims, n = (args.grid,) * 3, args.n_frames
    which = [round(i * (n - 1) / max(args.pick - 1, 1)) for i in range(args.pick)]
    t0 = time.perf_counter()
    dense = list(decode_frames(dec, job.code, job.angles, dims, n, 65536, fast=False, frames=which))
    t_dense = (time.perf_counter() - t0) / len(which)
    stats: dict = {}
    t0 = time.perf_counter()
    adapt = list(decode_frames(dec, job.code, job.angles, dims, n, 65536, adaptive=True, frames=which, stats=stats))
    t_adapt = (time.perf_counter() - t0) / len(which)
    full = np.ones((3, 3, 3))
    lost = comps = disagree = 0
    for d, a in zip(dense, adapt):
        disagree += int(np.sum((d <= 0) != (a <= 0)))
        lab, k = ndimage.label(d <= 0, full)
        comps += k
        if k:
            lost += int(np.sum(~np.asarray(ndimage.maximum(a <= 0, lab, np.arange(1, k + 1)), dtype=bool)))
    vox = sum(d.size for d in dense)
    return {"t_dense": t_dense, "t_adaptive": t_adapt, "agreement": 1 - disagree / vox, "components": comps,
            "lost": lost, "eval_ratio": vox / stats["evaluations"], "frames": len(which), "grid": args.grid}


# --------------------------------------------------------------------------

def make_synthetic(folder: Path, grid: int, n_seq: int, frames: int, log=print) -> Path:
    """Phantom cells at ``grid``³ (SDF clamp 16 voxels at 128³, the paper's share), cached in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds = ["divide", "filo", "deform"]
    for i in range(n_seq):
        path = folder / f"seq_{i:03d}_{kinds[i % 3]}.h5"
        if not path.is_file():
            log(f"  making {path}")
            masks = phantom_sequence(kinds[i % 3], grid=grid, frames=frames, seed=100 + i)
            write_sequence(path, sdf_sequence(masks, clamp=32.0 * (grid - 1) / 255), compression=1)
    return folder


def adaptive_on_stored_sdf(folder: Path, pick: int) -> dict:
    """Adaptive extraction with the stored SDF of the set as the 'network' (exact field)."""
    files = sorted(folder.glob("*.h5"))
    disagree = vox = evals = 0
    for path in files:
        with SequenceFile(path) as f:
            for t in sorted({round(i * (f.n_frames - 1) / max(pick - 1, 1)) for i in range(pick)}):
                frame = f.frame(t)
                st: dict = {}
                out = decode_adaptive(lambda idx: frame.reshape(-1)[idx], frame.shape, stats=st)
                disagree += int(np.sum((out <= 0) != (frame <= 0)))
                vox += frame.size
                evals += st["evaluations"]
    return {"agreement": 1 - disagree / vox, "eval_ratio": vox / evals}


def run_worker(kind: str, *extra: str, timeout: float = 3600) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def build_parser() -> base.Parser:
    p = base.parser("benchmarks/run.py", __doc__.split("\n\n")[0], ["python benchmarks/run.py",
                                                                    "python benchmarks/run.py --quick"])
    p.add_argument("--quick", action="store_true", help="fewer batches, frames and epochs (under 10 minutes)")
    p.add_argument("--workdir", default="/tmp/autodecoder_bench", help="where the synthetic set is cached")
    p.add_argument("--demo-experiment", default=str(ROOT / "experiments" / "demo"))
    p.add_argument("--epoch", default="latest", help="checkpoint of the demo experiment")
    p.add_argument("--repeat", type=int, default=None, help="timing repeats (best is kept)")
    # worker mode (internal)
    for name, kw in (("--worker", {}), ("--path", {}), ("--data", {}), ("--fraction", {"type": float}),
                     ("--fpb", {"type": int, "default": 8}), ("--batches", {"type": int}),
                     ("--dims", {"type": int, "nargs": 3}), ("--out", {}), ("--experiment", {}),
                     ("--seq", {"type": int, "default": 1}), ("--grid", {"type": int, "default": 128}),
                     ("--n-frames", {"type": int, "default": 12}), ("--pick", {"type": int, "default": 3})):
        p.add_argument(name, help=argparse.SUPPRESS, **kw)
    return p


def command(args: argparse.Namespace) -> int:
    if args.repeat is None:
        args.repeat = 1 if args.quick else 2
    if args.worker:
        fn = {"train": worker_train, "decode": worker_decode, "adaptive": worker_adaptive}[args.worker]
        print(json.dumps(fn(args)))
        return 0
    t_start = time.time()
    sets, res = measure_paths(args)
    adaptive_demo, adaptive_synth = measure_adaptive(args, sets[1][1])
    t_paths = time.time() - t_start
    log("paper-size decoding (benchmarks/paper_size.py)")
    paper = paper_size.measure(Path(args.workdir) / "paper_size", quick=args.quick)
    t_paper = time.time() - t_start - t_paths
    log("Dice against training time (benchmarks/cpu_training.py)")
    curve = cpu_training.measure(Path(args.workdir) / "cpu_training",
                                 **(dict(names=("recipe",), epochs=QUICK_RECIPE_EPOCHS) if args.quick else {}))
    t_curve = time.time() - t_start - t_paths - t_paper
    threads = res[(sets[0][0], "plain", "train")]["threads"]
    print(f"released architecture (216,137 parameters), {os.cpu_count()} CPU cores, torch threads {threads}, "
          f"FramesPerBatch 8, TrainSampleFraction {sets[0][2]} / {sets[1][2]}; best of {args.repeat}; "
          f"{time.time() - t_start:.0f} s in all: paths {t_paths:.0f} s, paper size {t_paper:.0f} s, "
          f"training curve {t_curve:.0f} s (cached models in {args.workdir} are reused); load average now "
          f"{os.getloadavg()[0]:.1f}")
    print("\n".join(table(sets, res, adaptive_demo, adaptive_synth)))
    print("\npaper-size decoding (benchmarks/paper_size.py: a released-architecture model trained here on 128³ cells)")
    print("\n".join(paper_size.table_lines(paper)))
    print("\nreconstruction Dice against training time (benchmarks/cpu_training.py: 6 × 10 × 64³ phantom cells)")
    print("\n".join(cpu_training.summary_lines(curve)))
    return 0


def log(s: str) -> None:
    print(s, file=sys.stderr, flush=True)


def measure_paths(args: argparse.Namespace) -> tuple[list, dict]:
    """Training and dense decoding, plain against fast, on the demo set and the synthetic 128³ set."""
    demo = ROOT / "data" / "demo"
    if not any(demo.glob("*.h5")):
        log("making the demo data")
        make_demo_data(progress=False, log=log)
    n_seq, n_frames = (3, 6) if args.quick else (4, 8)
    synth = make_synthetic(Path(args.workdir) / f"synth128_{n_seq}x{n_frames}", 128, n_seq, n_frames, log)
    sets = [("demo 64³", demo, 0.05, (64, 64, 64)),
            ("synthetic 128³", synth, 0.01 if args.quick else 0.02, (128, 128, 16 if args.quick else 32))]
    batches = 2 if args.quick else 3
    res: dict = {}
    for name, folder, fraction, dims in sets:
        runs: dict = {"plain": [], "fast": []}
        for rep in range(args.repeat):  # interleaved, so that a busy spell hits both paths alike
            for path in ("plain", "fast"):
                log(f"{name}: training, {path} path ({rep + 1}/{args.repeat})")
                runs[path].append(run_worker("train", "--path", path, "--data", str(folder), "--fraction",
                                             str(fraction), "--batches", str(batches)))
        for path in ("plain", "fast"):
            best = max(runs[path], key=lambda r: r["points_per_s"])
            best["peak_mib"] = min(r["peak_mib"] for r in runs[path])
            res[(name, path, "train")] = best
            log(f"{name}: decoding {dims}, {path} path")
            res[(name, path, "decode")] = run_worker("decode", "--path", path, "--dims", *map(str, dims),
                                                     "--out", str(Path(args.workdir) / f"dec_{path}.npy"),
                                                     "--repeat", str(args.repeat))
        a, b = np.load(Path(args.workdir) / "dec_plain.npy"), np.load(Path(args.workdir) / "dec_fast.npy")
        res[(name, "decode_diff")] = float(np.abs(a - b).max())
        lp, lf = res[(name, "plain", "train")]["losses"], res[(name, "fast", "train")]["losses"]
        res[(name, "loss_diff")] = float(np.max(np.abs(np.array(lp) - np.array(lf))))
    return sets, res


def measure_adaptive(args: argparse.Namespace, synth: Path) -> tuple[dict | None, dict]:
    """Adaptive extraction on the demo model (when trained) and on the synthetic set's stored SDF."""
    demo_exp = Path(args.demo_experiment)
    adaptive_demo = None
    if (demo_exp / "model_parameters").is_dir():
        log("demo model: adaptive extraction at 128³")
        try:
            adaptive_demo = run_worker("adaptive", "--experiment", str(demo_exp), "--epoch", args.epoch, "--seq", "1",
                                       "--grid", "128", "--n-frames", "12", "--pick", "1" if args.quick else "3")
        except RuntimeError as e:
            log(f"adaptive extraction skipped: {e}")
    log("synthetic set: adaptive extraction on the stored SDF")
    return adaptive_demo, adaptive_on_stored_sdf(synth, 1 if args.quick else 2)


def table(sets: list, res: dict, adaptive_demo: dict | None, adaptive_synth: dict) -> list[str]:
    """The printed table: one column pair (plain, fast) per data set."""
    cols = [name for name, *_ in sets]
    lines = [f"{'':34}" + "".join(f"{c:>36}" for c in cols),
             f"{'':34}" + "".join(f"{'plain':>12}{'fast':>12}{'fast/plain':>12}" for _ in cols)]

    def row(label: str, key: str, field: str, fmt: str) -> None:
        cells = ""
        for c in cols:
            a, b = res[(c, "plain", key)][field], res[(c, "fast", key)][field]
            cells += f"{format(a, fmt):>12}{format(b, fmt):>12}{b / a:>11.2f}×"
        lines.append(f"{label:34}{cells}")

    def one(label: str, key: str, fmt: str) -> None:
        lines.append(f"{label:34}" + "".join(f"{format(res[(c, key)], fmt):>24}{'':>12}" for c in cols))

    row("training, SDF points/s", "train", "points_per_s", ",.0f")
    lines.append(f"{'  points per batch':34}" + "".join(
        f"{res[(c, 'plain', 'train')]['points_per_batch']:>24,}{'':>12}" for c in cols))
    one("  max |Δ loss| plain vs fast", "loss_diff", ".1e")
    row("training, peak RSS (MiB)", "train", "peak_mib", ",.0f")
    row("  samples held (MiB)", "train", "samples_mib", ",.1f")
    row("dense decoding, points/s", "decode", "points_per_s", ",.0f")
    one("  max |Δ sdf| plain vs fast", "decode_diff", ".1e")
    if adaptive_demo:
        a = adaptive_demo
        lines.append(f"{'adaptive 128³, s/frame':34}{a['t_dense']:>12.1f}{a['t_adaptive']:>12.1f}"
                     f"{a['t_dense'] / a['t_adaptive']:>10.1f}× (dense plain vs adaptive, demo model)")
        lines.append(f"{'  mask agreement, lost components':34}{'':>12}{100 * a['agreement']:>11.4f}%"
                     f"{a['lost']:>6} of {a['components']}")
        lines.append(f"{'  network evaluations dense/adapt.':34}{'':>12}{a['eval_ratio']:>11.1f}×")
    else:
        lines.append(f"{'adaptive 128³':34}{'(demo experiment not trained: python -m autodecoder.demo)':>36}")
    lines.append(f"{'adaptive 128³ on the stored SDF':34}{'':>36}{'':>12}{100 * adaptive_synth['agreement']:>11.4f}%"
                 f"{adaptive_synth['eval_ratio']:>10.1f}× fewer evaluations")
    return lines


def main(argv: list[str] | None = None) -> int:
    return base.run(build_parser(), command, argv)


if __name__ == "__main__":
    sys.exit(main())
