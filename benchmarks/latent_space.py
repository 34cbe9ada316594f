#!/usr/bin/env python
"""Measure what the latent-space types give on a trained model (re-runnable; prints Markdown tables).

``compare``: generate vs generate_filo vs sample
    Decodes the cells of each type as ``test.py`` does (same seed), then

    * diversity: the mean pairwise Dice between the generated cells decoded
      *without* rotation (per frame, averaged over frames and over all pairs;
      lower is more varied); the training cells' own value is printed for
      reference;
    * realism: two-sample Kolmogorov–Smirnov p-values of every per-frame shape
      descriptor (:func:`autodecoder.evaluation.compare`) of the cells as
      written (with their rotations) against the training cells (higher: no
      evidence that they differ).

    With ``--docs DIR`` it also writes the picture of the README (MIPs of the
    three types side by side).

``fit``: fit vs the best learned code
    For each ``--target``: the Dice of the best single learned code decoded
    with the best learned rotation (every code × every rotation is ranked by
    its Dice on three frames (first, middle, last); the ``--top`` best pairs
    are then scored on all frames), and the Dice of ``test.py -t fit``
    (started from the mean code).

``targets``: unseen demo-style cells to fit (phantom seeds 6, 7, 8 by default).

Examples::

    python benchmarks/latent_space.py targets --out /tmp/unseen
    python benchmarks/latent_space.py compare -x /tmp/latent_demo -e latest --docs docs
    python benchmarks/latent_space.py fit -x /tmp/latent_demo -e latest --target unseen.h5
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import numpy as np

from autodecoder.cli import base
from autodecoder.decoding.trained import TrainedModel, load_model
from autodecoder.decoding.types import plan
from autodecoder.decoding.options import LatentOptions
from autodecoder.evaluation import compare as evaluation
from autodecoder.decoding import run as generation
from autodecoder.experiment import specs as specs_mod
from autodecoder.experiment import workspace as ws
from autodecoder.evaluation.descriptors import FRAME_DESCRIPTORS, LABELS
from autodecoder.io.discovery import list_sequence_files
from autodecoder.io.sequences import read_provenance, read_sequence
from autodecoder.evaluation.metrics import dice

KINDS = ("generate", "generate_filo", "sample")


def quiet(_: str) -> None:
    pass


def decode(model: TrainedModel, code, angles, dims=None, frames=None) -> np.ndarray:
    """A whole sequence (T, X, Y, Z) decoded with the experiment's options."""
    return np.stack(list(model.frames(code, angles, dims, frames)))


def mean_pairwise_dice(masks: list[np.ndarray]) -> float:
    """Mean over pairs of sequences of the mean per-frame Dice."""
    vals = [np.mean([dice(a[t], b[t]) for t in range(len(a))]) for a, b in itertools.combinations(masks, 2)]
    return float(np.mean(vals))


def sheet_rows(masks: list[np.ndarray], frames: list[int]) -> np.ndarray:
    from autodecoder.io.pictures import mip
    rows = []
    for m in masks:
        rows.append(np.concatenate([np.pad(mip(m[t]), 1, constant_values=96) for t in frames], axis=1))
    return np.concatenate(rows, axis=0)


def compare(args) -> int:
    exp = Path(args.experiment)
    trained = load_model(exp, args.epoch)
    specs = trained.specs
    out = Path(args.out or exp / "latent_benchmark")
    train_files = list_sequence_files(ws.data_folder(specs_mod.load(exp, specs_mod.TRAIN), exp), specs["UseHDF5"])
    opts = {"generate": None, "generate_filo": None,
            "sample": LatentOptions(temperature=args.temperature, num=args.num, pca=args.pca)}
    results, pictures = {}, {}
    t0 = time.time()
    truth = [read_sequence(f) <= 0 for f in train_files]
    train_div = mean_pairwise_dice(truth)
    for kind in KINDS:
        files = generation.run(exp, kind, epoch=args.epoch, seed=args.seed, out_dir=out / kind,
                               progress=not args.no_progress, log=quiet, options=opts[kind])
        # the codes decoded in those files: the same plan, from the same seed
        codes = [j.code for j in plan(kind, trained.codes, trained.angles, specs["NumSequences"],
                                                 args.seed, opts[kind])]
        unrotated = [decode(trained, c, np.zeros(3, np.float32)) <= 0 for c in codes]
        div = mean_pairwise_dice(unrotated)
        cmp = evaluation.compare(train_files, files, out / f"ks_{kind}", names=("training", kind),
                                 progress=False, log=quiet, workers=args.workers)
        p = {r["descriptor"]: r["p_value"] for r in cmp.ks if r["level"] == "frame"}
        results[kind] = {"n": len(files), "diversity": div, "p": p}
        pictures[kind] = [read_sequence(f) <= 0 for f in files]
        print(f"{kind}: {len(files)} cells, mean pairwise Dice {div:.3f} ({time.time() - t0:.0f} s)", flush=True)
    label = f"sample (T = {args.temperature:g}" + (f", PCA {args.pca}" if args.pca else "") + ")"
    names = {"generate": "generate", "generate_filo": "generate_filo", "sample": label}
    print()
    print(f"Model {exp} ({trained.source.name}, epoch {trained.epoch}); seed {args.seed}; "
          f"{len(train_files)} training cells (mean pairwise Dice {train_div:.3f})")
    print()
    print("| | " + " | ".join(names[k] for k in KINDS) + " |")
    print("|---|" + "---:|" * len(KINDS))
    print("| cells | " + " | ".join(str(results[k]["n"]) for k in KINDS) + " |")
    print("| diversity: mean pairwise Dice, no rotation (lower = more varied) | "
          + " | ".join(f"{results[k]['diversity']:.3f}" for k in KINDS) + " |")
    for d in FRAME_DESCRIPTORS:
        cells = []
        for k in KINDS:
            v = results[k]["p"].get(d, float("nan"))
            cells.append("n/a" if not np.isfinite(v) else (f"{v:.2g}" if v >= 1e-3 else f"{v:.0e}"))
        print(f"| KS p-value: {LABELS[d][0]} | " + " | ".join(cells) + " |")
    ps, pg = results["sample"]["p"], results["generate"]["p"]
    tested = [d for d in FRAME_DESCRIPTORS if np.isfinite(ps.get(d, np.nan)) and np.isfinite(pg.get(d, np.nan))]
    not_worse = [d for d in tested if ps[d] >= pg[d] * (1 - 1e-9)]  # equal p-values (e.g. both 1) count as equal
    print()
    print(f"sample vs generate: more varied {results['sample']['diversity'] < results['generate']['diversity']} "
          f"({results['sample']['diversity']:.3f} vs {results['generate']['diversity']:.3f}); p-value at least as "
          f"high on {len(not_worse)} of {len(tested)} descriptors"
          + (f" (lower on: {', '.join(LABELS[d][0] for d in tested if d not in not_worse)})"
             if len(not_worse) < len(tested) else ""))
    if args.docs:
        write_picture(pictures, names, Path(args.docs) / "latent_space_types.png", specs)
    return 0


def write_picture(pictures, names, path: Path, specs) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n_frames = specs["ReconstructionFramesPerSequence"]
    frames = sorted({0, n_frames // 3, (2 * n_frames) // 3, n_frames - 1})
    fig, axes = plt.subplots(1, len(KINDS), figsize=(3.0 * len(KINDS), 4.2), dpi=80)
    for ax, kind in zip(axes, KINDS):
        ax.imshow(sheet_rows(pictures[kind], frames), cmap="gray", vmin=0, vmax=255)
        ax.set_title(names[kind], fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("frames " + ", ".join(str(t) for t in frames), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    print(f"picture: {path}")


def best_learned(model: TrainedModel, codes, angles, target: np.ndarray, top: int) -> tuple[float, int, int]:
    """(Dice, code row, rotation row) of the best learned code with the best learned rotation."""
    n_frames = target.shape[0]
    dims = target.shape[1:]
    mask = target <= 0
    probe = sorted({0, n_frames // 2, n_frames - 1})
    scored = []
    for i, j in itertools.product(range(len(codes)), range(len(angles))):
        recs = model.frames(codes[i], angles[j], dims, n_frames, frames=probe)
        scored.append((float(np.mean([dice(r <= 0, mask[t]) for r, t in zip(recs, probe)])), i, j))
    scored.sort(reverse=True)
    best = (-1.0, -1, -1)
    for _, i, j in scored[:top]:
        rec = decode(model, codes[i], angles[j], dims, n_frames)
        d = float(np.mean([dice(rec[t] <= 0, mask[t]) for t in range(n_frames)]))
        best = max(best, (d, i, j))
    return best


def fit(args) -> int:
    exp = Path(args.experiment)
    trained = load_model(exp, args.epoch)
    out = Path(args.out or exp / "latent_benchmark" / "fit")
    rows = []
    for target in args.target:
        t0 = time.time()
        truth = read_sequence(target)
        best, i, j = best_learned(trained, trained.codes, trained.angles, truth, args.top)
        print(f"{Path(target).name}: best learned code {i} with learned rotation {j}: Dice {best:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)
        files = generation.run(exp, "fit", epoch=args.epoch, seed=args.seed, out_dir=out,
                               progress=not args.no_progress, log=quiet,
                               options=LatentOptions(target=str(target), iterations=args.iterations, lr=args.lr,
                                                     clamp=args.clamp))
        prov = read_provenance(files[0])
        print(f"{Path(target).name}: fit from the mean code: Dice {float(prov['dice_mean']):.4f} "
              f"(SDF loss {float(prov['fit_loss_start']):.4f} → {float(prov['fit_loss_final']):.4f}; "
              f"{time.time() - t0:.0f} s)", flush=True)
        rows.append((Path(target).name, best, i, j, float(prov["dice_mean"])))
    print()
    print("| unseen sequence | best learned code × best learned rotation: Dice (code, rotation) "
          "| fit from the mean code: Dice |")
    print("|---|---:|---:|")
    for name, best, i, j, d in rows:
        print(f"| {name} | {best:.3f} ({i}, {j}) | {d:.3f} |")
    return 0


def targets(args) -> int:
    """Unseen demo-style cells: phantoms of seeds the demo does not use, prepared as the demo data are
    (CytoPacq-style mask TIFFs, then the ``voxvol_to_sdf`` port), written as ``<out>/unseen_sNN_<kind>.h5``."""
    import tempfile

    from autodecoder.demo import phantoms
    from autodecoder.demo.run import DEMO_CLAMP, DEMO_FRAMES, DEMO_GRID
    from autodecoder.demo.masks import MASK_DIR, write_label_tiff
    from autodecoder.demo.masks import convert_demo_masks

    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            kind = phantoms.KINDS[seed % 3]  # the demo's order: sequence i is KINDS[i % 3], seed i
            for t, m in enumerate(phantoms.phantom_sequence(kind, DEMO_GRID, DEMO_FRAMES, seed)):
                write_label_tiff(m, Path(tmp) / f"unseen_s{seed:02d}_{kind}" / MASK_DIR / f"mask_t{t:03d}.tif")
        files = convert_demo_masks(tmp, out, grid=DEMO_GRID, clamp=DEMO_CLAMP, progress=not args.no_progress)
    for f in files:
        print(f)
    return 0


def main(argv=None) -> int:
    p = base.parser("benchmarks/latent_space.py", __doc__.splitlines()[0], [
        "python benchmarks/latent_space.py targets --out /tmp/unseen",
        "python benchmarks/latent_space.py compare -x experiments/demo -e latest --docs docs",
        "python benchmarks/latent_space.py fit -x experiments/demo -e latest --target /tmp/unseen/*.h5"])
    sub = base.subcommands(p, "COMMAND")
    for name in ("compare", "fit"):
        s = sub.add_parser(name)
        s.add_argument("-x", "--experiment", required=True)
        s.add_argument("-e", "--epoch", default="latest")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--out")
        s.add_argument("--no-progress", action="store_true")
    c = sub.choices["compare"]
    c.add_argument("--num", type=int, help="sampled cells (default NumSequences, as generate)")
    c.add_argument("--temperature", type=float, default=1.0)
    c.add_argument("--pca", type=int)
    c.add_argument("--workers", type=int, default=1, help="descriptor worker processes (default 1)")
    c.add_argument("--docs", help="write the README picture into this folder")
    f = sub.choices["fit"]
    f.add_argument("--target", nargs="+", required=True)
    f.add_argument("--iterations", type=int)
    f.add_argument("--lr", type=float)
    f.add_argument("--clamp", type=float)
    f.add_argument("--top", type=int, default=3, help="pairs re-scored on all frames (default 3)")
    t = sub.add_parser("targets", help="write unseen demo-style cells (phantom seeds the demo does not use)")
    t.add_argument("--out", required=True, help="folder for unseen_sNN_<kind>.h5")
    t.add_argument("--seeds", type=int, nargs="+", default=[6, 7, 8], help="phantom seeds (default 6 7 8; "
                   "the demo uses 0-5); the kind follows the demo's order: divide, filo, deform")
    t.add_argument("--no-progress", action="store_true")
    return base.run(p, lambda args: {"compare": compare, "fit": fit, "targets": targets}[args.mode](args), argv)


if __name__ == "__main__":
    sys.exit(main())
