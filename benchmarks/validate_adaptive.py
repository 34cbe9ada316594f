#!/usr/bin/env python
"""Check adaptive extraction against dense decoding on a trained experiment.

For every sequence of ``reconstruct`` and ``generate`` (seed 0) of the
experiment, decode frames densely (the fast path, equal to the plain path to
1e-5) and adaptively (keeping the levels 0 and 0.035 exact, as ``test.py --adaptive``
does), and report: the share of voxels whose ``sdf <= 0`` mask
agrees, connected components (26-connectivity) of the dense mask that the
adaptive mask misses, the largest difference on the voxels adaptive extraction
evaluated, network evaluations, times, and the steepest slope of the network
between neighbouring voxels (what the slope bound ``L`` must exceed). It also stores each
adaptive frame as ``test.py --adaptive`` does by default (``--store compact``: exact values inside the
cell and in a band, a constant beyond) and compares the stored frame's masks ``sdf <= 0`` and
``sdf <= 0.035`` (the filopodial threshold) with the dense ones, voxel for voxel.

    python benchmarks/validate_adaptive.py -x experiments/demo -e latest \
        --grid 128 --frames 12 --grid 256 --frames 30 --pick 3

``--pick K`` decodes K frames per sequence (first, middle, last, …) instead of all.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from autodecoder.cli import base
from autodecoder.decoding import adaptive
from autodecoder.decoding.options import resolve_storage
from autodecoder.decoding.trained import TrainedModel, load_model
from autodecoder.decoding.types import Job, plan
from autodecoder.experiment.keys import default
from autodecoder.io.exports import FILO_THRESHOLD

ROOT = Path(__file__).resolve().parent.parent
FULL = np.ones((3, 3, 3), dtype=bool)
#: ``test.py --adaptive``'s default storage: masks at 0 and the filopodial threshold kept exact.
COMPACT = resolve_storage(None, adaptive=True, exports=None, band=None)


def max_slope(f: np.ndarray, near: float = 0.3) -> tuple[float, float]:
    """Largest |f(p) - f(q)| / |p - q| over neighbouring voxels (13 directions): everywhere, and
    where both values are within ``near`` of 0."""
    h = [2.0 / (n - 1) for n in f.shape]
    top = top_near = 0.0
    inner = (slice(1, -1),) * 3
    for d in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1), (1, -1, 0), (1, 0, -1),
              (0, 1, -1), (1, 1, -1), (1, -1, 1), (-1, 1, 1)]:
        g = np.roll(f, shift=tuple(-x for x in d), axis=(0, 1, 2))
        dist = float(np.sqrt(sum((x * hh) ** 2 for x, hh in zip(d, h))))
        diff = (np.abs(f - g) / dist)[inner]
        close = (np.maximum(np.abs(f), np.abs(g)) < near)[inner]
        top = max(top, float(diff.max()))
        if close.any():
            top_near = max(top_near, float(diff[close].max()))
    return top, top_near


def lost_components(dense: np.ndarray, adapt: np.ndarray) -> tuple[int, int, int]:
    """(components of dense, of adaptive, dense components without any adaptive voxel)."""
    lab, n = ndimage.label(dense, FULL)
    _, m = ndimage.label(adapt, FULL)
    if n == 0:
        return 0, m, 0
    hit = ndimage.maximum(adapt, lab, index=np.arange(1, n + 1))
    return n, m, int(np.sum(~np.asarray(hit, dtype=bool)))


def build_parser() -> base.Parser:
    p = base.parser("benchmarks/validate_adaptive.py", __doc__.split("\n\n")[0], [
        "python benchmarks/validate_adaptive.py -x experiments/demo -e latest --grid 128 --frames 12",
        "python benchmarks/validate_adaptive.py -x experiments/demo --grid 256 --frames 30 --pick 3"])
    base.add_experiment(p, required=False, default=str(ROOT / "experiments" / "demo"))
    base.add_epoch(p, default="latest")
    p.add_argument("--grid", type=int, action="append", help="grid size (repeat for several)")
    p.add_argument("--frames", type=int, action="append", help="frames per sequence, one per --grid")
    p.add_argument("--pick", type=int, action="append", help="frames decoded per sequence, one per --grid "
                   "(0 = all)")
    p.add_argument("--kinds", default="reconstruct,generate")
    p.add_argument("--safety", type=float, action="append", help="safety factor of the slope bound (repeat to "
                   f"compare several; default {default('AdaptiveSafety')})")
    p.add_argument("--json", help="write the per-frame results here")
    return p


def validate_frame(model: TrainedModel, job: Job, dims: tuple, n_frames: int, f: int, dense: np.ndarray,
                   lip: float, safety: float) -> dict:
    """Adaptive extraction of frame ``f`` of ``job`` against its dense decoding ``dense``."""
    st: dict = {"exact": None}
    t0 = time.perf_counter()
    a = next(model.frames(job.code, job.angles, dims, n_frames, adaptive=True, frames=[f], stats=st,
                          lipschitz=lip, levels=COMPACT.levels))  # as test.py --adaptive decodes
    t_ad = time.perf_counter() - t0
    md, ma = dense <= 0, a <= 0
    n_d, n_a, lost = lost_components(md, ma)
    stored = COMPACT.encode(a)  # what a compact file holds for this frame
    compact_disagree = sum(int(np.sum((dense <= v) != (stored <= v))) for v in COMPACT.levels)
    ex = st["exact"]
    slope, slope_near = max_slope(dense)
    return dict(grid=dims[0], safety=safety, seq=job.index, frame=f, voxels=int(dense.size),
                disagree=int(np.sum(md != ma)), compact_disagree=compact_disagree, comps_dense=n_d,
                comps_adaptive=n_a, lost=lost,
                band_maxdiff=float(np.abs(a[ex] - dense[ex]).max()), evaluations=int(st["evaluations"]),
                t_adaptive=t_ad, slope=slope, slope_near=slope_near)


def frame_line(r: dict, lip: float) -> str:
    return (f"{r['grid']}³ L={lip:.1f} {r['kind']} {r['seq']} t{r['frame']:02d}: agree "
            f"{100 * (1 - r['disagree'] / r['voxels']):.5f} %, compact file's masks at 0/{FILO_THRESHOLD:g}: "
            f"{r['compact_disagree']} voxels differ, components {r['comps_dense']}/{r['comps_adaptive']} "
            f"lost {r['lost']}, band max|Δ| {r['band_maxdiff']:.1e}, evaluations {r['evaluations']} (dense/adaptive "
            f"{r['voxels'] / r['evaluations']:.1f}×), time {r['t_dense']:.1f} s / {r['t_adaptive']:.1f} s, "
            f"slope {r['slope']:.1f} (near 0: {r['slope_near']:.1f})")


def summary_line(rs: list[dict], grid: int, safety: float) -> str:
    vox = sum(r["voxels"] for r in rs)
    return (f"{grid}³, L = {adaptive.lipschitz_bound(safety):.1f} (safety {safety:g}): {len(rs)} frames, mask "
            f"agreement {100 * (1 - sum(r['disagree'] for r in rs) / vox):.5f} % (worst frame "
            f"{100 * (1 - max(r['disagree'] / r['voxels'] for r in rs)):.5f} %), compact files: "
            f"{sum(r['compact_disagree'] for r in rs)} voxels differ from dense at 0 and {FILO_THRESHOLD:g}, components lost "
            f"{sum(r['lost'] for r in rs)} of {sum(r['comps_dense'] for r in rs)}, band max|Δ| "
            f"{max(r['band_maxdiff'] for r in rs):.1e}, evaluations dense/adaptive "
            f"{vox / sum(r['evaluations'] for r in rs):.1f}× (worst frame "
            f"{min(r['voxels'] / r['evaluations'] for r in rs):.1f}×), time per frame dense "
            f"{np.mean([r['t_dense'] for r in rs]):.1f} s, adaptive {np.mean([r['t_adaptive'] for r in rs]):.1f} s, "
            f"steepest slope {max(r['slope'] for r in rs):.1f} (near 0: {max(r['slope_near'] for r in rs):.1f})")


def command(args) -> int:
    grids = args.grid or [128]
    frames = args.frames or [12] * len(grids)
    picks = args.pick or [0] * len(grids)
    model = load_model(args.experiment, args.epoch)
    safeties = args.safety or [default("AdaptiveSafety")]
    rows = []
    print(f"{args.experiment} ({model.source.name}), L = " + ", ".join(
        f"{adaptive.lipschitz_bound(s):.1f} (safety {s:g})" for s in safeties), flush=True)
    for grid, n_frames, pick in zip(grids, frames, picks):
        dims = (grid,) * 3
        which = list(range(n_frames)) if not pick else sorted({round(i * (n_frames - 1) / max(pick - 1, 1))
                                                               for i in range(pick)})
        for kind in args.kinds.split(","):
            for job in plan(kind, model.codes, model.angles, model.specs["NumSequences"], 0):
                t0 = time.perf_counter()
                dense = list(model.frames(job.code, job.angles, dims, n_frames, frames=which))
                t_dense = (time.perf_counter() - t0) / len(which)
                for f, d in zip(which, dense):
                    for safety in safeties:
                        lip = adaptive.lipschitz_bound(safety)
                        rows.append({**validate_frame(model, job, dims, n_frames, f, d, lip, safety),
                                     "kind": kind, "t_dense": t_dense})
                        print(frame_line(rows[-1], lip), flush=True)
    print("\nsummary")
    for grid in grids:
        for safety in safeties:
            print(summary_line([r for r in rows if r["grid"] == grid and r["safety"] == safety], grid, safety))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    return base.run(build_parser(), command, argv)


if __name__ == "__main__":
    sys.exit(main())
