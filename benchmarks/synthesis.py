#!/usr/bin/env python
"""Time per frame and peak memory of synthetic microscopy, from a model and from files.

    python benchmarks/synthesis.py            # 30 frames each, about 10 minutes on 2 cores
    python benchmarks/synthesis.py --quick    # 6 frames

The field is 256 × 256 × 64 voxels of 0.2 × 0.2 × 0.5 µm (x, y, z), 5 cells, z oversampling 3, a
widefield vectorial PSF (NA 1.0, 520 nm), noise solved for SNR 10 and CR 1.5, CTC + OME-TIFF outputs.
Cells come from the released-architecture checkpoint of ``tests/data/reference_experiment`` (its
learned cells, adaptive extraction) and from the demo's SDF files (``data/demo``, made if missing).
Each run is its own process; its peak resident memory is measured with short and long sequences,
to show that memory does not grow with the number of frames.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autodecoder.cli import base
from autodecoder.demo.run import make_demo_data
from autodecoder.microscopy.config import build_config
from autodecoder.microscopy.run import FileSource, ModelSource, synthesize

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data" / "reference_experiment"
DEMO = ROOT / "data" / "demo"
FIELD = {"shape_zyx": [64, 256, 256], "voxel_size_xyz": [0.2, 0.2, 0.5]}
#: The model cube in µm: the cells are then 10–20 µm across (bounding spheres, filopodia included).
CUBE = {"model": 16.0, "files": 16.0}


def worker(args: argparse.Namespace) -> dict:
    config = build_config(overrides={"field": {**FIELD, "frames": args.frames, "cube_size_um": CUBE[args.worker]},
                                     "cells": {"count": 5}, "output": {"projections": False}})
    if args.worker == "model":
        source = ModelSource(REFERENCE, 10, "cpu", "reconstruct", None, adaptive=True)
    else:
        source = FileSource([DEMO])
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        record = synthesize(source, config, out, seed=0, progress=False, log=lambda s: None)
        seconds = time.perf_counter() - t0
        seq = json.loads(Path(record).read_text())["sequences"][0]
    return {"seconds": seconds, "per_frame": seconds / args.frames,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "radii_um": [round(c["radius_um"], 1) for c in seq["cells"]],
            "snr": seq.get("measured_snr_first_frame"), "cr": seq.get("measured_cr_first_frame")}


def run_worker(source: str, frames: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", source, "--frames", str(frames)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def build_parser() -> base.Parser:
    p = base.parser("benchmarks/synthesis.py", __doc__.split("\n\n")[0],
                    ["python benchmarks/synthesis.py", "python benchmarks/synthesis.py --quick"])
    p.add_argument("--quick", action="store_true", help="6 frames instead of 30 (memory: 3 and 6)")
    p.add_argument("--worker", choices=("model", "files"), help=argparse.SUPPRESS)
    p.add_argument("--frames", type=int, default=30, help=argparse.SUPPRESS)
    return p


def command(args: argparse.Namespace) -> int:
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if not any(DEMO.glob("*.h5")):
        make_demo_data(progress=False, log=lambda s: print(s, file=sys.stderr))
    long, short = (6, 3) if args.quick else (30, 10)
    t0 = time.time()
    print("| cells from | frames | s per frame | peak RSS (MiB) | peak RSS, "
          f"{short} frames | bounding radii (µm) | SNR, CR of frame 0 |")
    print("|---|---:|---:|---:|---:|---|---|")
    for source in ("model", "files"):
        big, small = run_worker(source, long), run_worker(source, short)
        print(f"| {source} | {long} | {big['per_frame']:.2f} | {big['peak_mib']:,.0f} | {small['peak_mib']:,.0f} | "
              f"{', '.join(map(str, big['radii_um']))} | {big['snr']:.1f}, {big['cr']:.2f} |", flush=True)
    print(f"\n256 × 256 × 64 voxels of 0.2 × 0.2 × 0.5 µm, 5 cells, z oversampling 3, widefield vectorial PSF; "
          f"{time.time() - t0:.0f} s in all")
    return 0


def main(argv: list[str] | None = None) -> int:
    return base.run(build_parser(), command, argv)


if __name__ == "__main__":
    sys.exit(main())
