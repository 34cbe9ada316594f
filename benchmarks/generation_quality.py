#!/usr/bin/env python
"""Held-out benchmark of new cells: every way of drawing cells against test cells it never saw.

    python benchmarks/generation_quality.py            # 36 minutes on 2 idle cores
    python benchmarks/generation_quality.py --quick    # about 5 minutes

For each kind of cell of the phantom generator (dividing, filopodial, deforming):

1. a population with realistic variation (:mod:`autodecoder.demo.populations`: size, timing of
   division — a third of the dividing cells do not divide within the sequence —, number and length
   of filopodia, amplitude of deformation, travel and growth drawn per cell), split into
   train / validation / test cells (:data:`SIZES`);
2. one model trained on the train cells (:func:`specs`, pinned here: the SDFs of the masks, clamped
   at the demo's share of the grid; a SIREN of five layers of 64 with code length 16, 160 epochs —
   the filopodia need them: the reconstructions of filopodial cells were told apart from real ones
   at 1-NNA 1.00 after 30 epochs, 0.96 after 80 and 0.65 after 160 —; rotations start at each
   cell's principal axes, ``"InitialRotations": "principal_axes"``: with the original's random
   start, codes encode the cells' orientations and every prior's dividing cells came out flatter
   than real ones, 1-NNA 0.79 against the reconstructions' 0.47, and 0.53 with it);
3. each prior of ``test.py -t sample`` (:data:`autodecoder.decoding.priors.PRIORS`) fitted to the
   learned codes as ``test.py`` fits it (its own settings by BIC or leave-one-out likelihood of the
   codes), its **temperature** chosen on the **validation** cells only — they have no codes, so their
   shapes, not a likelihood, judge: one draw per candidate (compared on about every other frame, to
   halve the cost), the lowest validation 1-NNA, but temperature 1 (the command's default) kept
   unless another beats it by more than one standard error of a 1-NNA (a draw's noise). Copies are
   reported, not optimised: by the issue's threshold even the training cells count about half of
   themselves as copies of another;
4. against the **test** cells, with as many cells per draw as the test split holds and ``draws``
   draws per method (:mod:`autodecoder.evaluation.generation_quality`): the original's ``generate``,
   ``sample`` with every prior at its validated temperature (and the default prior at temperature 1,
   the command's default, when validation chose another), the model's reconstructions of the
   training cells and the training cells themselves (random subsets of the size of the test split);
   per-cell descriptor vectors (:mod:`autodecoder.evaluation.per_cell`), KS with Holm, 1-NNA,
   coverage, MMD and minimum matching distance, and copies: the Dice of canonical shapes (codes
   decoded without rotation, on a coarser grid, four frames) against the training cells' canonical
   shapes, above the mean nearest-neighbour Dice between distinct training cells (printed; the issue's
   threshold, which about half of the training cells exceed), and above their 95th percentile
   (``copies (q95)``, which 5 % of them exceed).

Writes ``<out>/<kind>/table.md`` (methods × measures), ``table.csv``, ``table_ks.csv`` (every
entry's median KS D and Holm p per method), ``distributions.png``, ``cells.png`` (six test cells above
six of the default ``sample``'s: maximum projections of the first, middle and last frames), and ``<out>/summary.md`` (all
tables, the issue's bar for the default prior, and which prior validation prefers per kind); prints
the tables and the total duration. A finished training is reused when the same ``--out`` is run
again with the same settings (``--retrain`` starts over).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from autodecoder.cli import base
from autodecoder.decoding import priors
from autodecoder.decoding.options import DEFAULT_PRIOR, DEFAULT_TEMPERATURE
from autodecoder.decoding.trained import TrainedModel, load_model
from autodecoder.decoding.types import Job, original_jobs, sample_jobs
from autodecoder.demo.phantoms import KINDS
from autodecoder.demo.populations import cell_masks, draw_population
from autodecoder.evaluation import generation_quality as gq
from autodecoder.evaluation.generative import calibrate_copy_threshold, one_nna
from autodecoder.evaluation.per_cell import LABELS, vector_names, vectors
from autodecoder.experiment import workspace as ws
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import atomic_write_text
from autodecoder.io.mask_sdf import sdf_sequence
from autodecoder.io.sequences import write_sequence
from autodecoder.model import checkpoints
from autodecoder.training import loop as training


@dataclass(frozen=True)
class Size:
    """How big a run is: grid (voxels per axis), frames, cells per split, draws per method, epochs,
    the temperatures validation chooses from, and the grid of the canonical shapes (copies)."""

    grid: int
    frames: int
    train: int
    validation: int
    test: int
    draws: int
    epochs: int
    temperatures: tuple[float, ...]
    canonical_grid: int


SIZES = {"default": Size(40, 8, 40, 24, 24, 5, 160, (0.5, 0.75, 1.0), 28),
         "quick": Size(32, 6, 24, 24, 24, 2, 30, (1.0,), 24)}
#: Outer SDF clamp: 8 voxels of a 64³ grid (the demo's, the original's 32 of 256³), scaled to the grid.
CLAMP_SHARE = 8.0 / 63
#: Entries of the per-cell vectors drawn in ``distributions.png``.
PLOTTED = ("volume_mean", "surface_area_mean", "sphericity_mean", "solidity_mean", "axis_major_mean",
           "axis_minor_mean", "elongation_mean", "flatness_mean", "protrusions_mean", "volume_slope",
           "relative_growth_rate", "division_frame")
REAL, RECONSTRUCTION, GENERATE = "training cells", "reconstructions", "generate"
#: Cells of each side in ``cells.png``.
SHOWN = 6
#: Quantile of the training cells' nearest-neighbour Dice used as a second, stricter copy threshold: the issue's
#: threshold (their mean) flags about half of the real cells themselves; this one flags 1 − 0.95 of them.
STRICT_QUANTILE = 0.95


def specs(data: Path, size: Size) -> dict:
    """The pinned specs of a kind's model (a small SIREN; schedules halve twice during the run)."""
    step = max(2 * size.epochs // 5, 1)
    return {
        "Description": ["benchmarks/generation_quality.py: one kind of phantom cell, train split"],
        "DataSource": str(data.resolve()),
        "NetworkSpecs": {"dims": [64] * 5, "dropout": [], "dropout_prob": 0.0, "norm_layers": [], "latent_in": [2],
                         "xyz_in_all": True, "use_tanh": False, "latent_dropout": False, "weight_norm": False},
        "CodeLength": 16, "NumEpochs": size.epochs,
        "LearningRateSchedule": [{"Type": "Step", "Initial": 5e-4, "Interval": step, "Factor": 0.5},
                                 {"Type": "Step", "Initial": 1e-3, "Interval": step, "Factor": 0.5},
                                 {"Type": "Step", "Initial": 1e-4, "Interval": step, "Factor": 0.5}],
        "TrainSampleFraction": 0.03, "NumSequences": size.train, "OptimizeRot": True,
        "InitialRotations": "principal_axes",
        "OptRotEpoch": max(size.epochs // 2, 1), "ClampSDFminmax": False, "ClampingDistance": 0.1,
        "FramesPerBatch": 8, "OnTheFlySampling": False, "UseHDF5": True, "HDF5CompressionLevel": 1,
        "CodeRegularization": True, "CodeRegularizationLambda": 1e-6,
        "ReconstructionDims": [size.grid] * 3, "ReconstructionSubsetSize": 65536,
        "ReconstructionFramesPerSequence": size.frames, "LogFrequency": size.epochs,
    }


# --------------------------------------------------------------------------
# data and model

def prepare(folder: Path, kind: str, size: Size, seed: int, retrain: bool, log) -> tuple[list, Path]:
    """The kind's population masks (train, validation, test), the train SDFs and the experiment folder."""
    # what decides the cells and the model (draws, temperatures and the canonical grid may change between runs)
    settings = {"kind": kind, "seed": seed, **{k: v for k, v in asdict(size).items()
                                               if k in ("grid", "frames", "train", "validation", "test", "epochs")},
                "specs": specs(folder / "data", size)}
    record = folder / "settings.json"
    if retrain and folder.exists():
        shutil.rmtree(folder)
    if record.is_file() and json.loads(record.read_text()) != json.loads(json.dumps(settings)):
        raise UserError(f"{folder}: holds a run with other settings ({record}); use another --out or --retrain")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, json.dumps(settings, indent=1))
    n = size.train + size.validation + size.test
    cells = draw_population(kind, n, int(np.random.SeedSequence([seed, KINDS.index(kind)]).generate_state(1)[0]))
    masks = [cell_masks(c, size.grid, size.frames) for c in cells]
    data = folder / "data"
    data.mkdir(exist_ok=True)
    for i in range(size.train):
        path = data / f"cell_{i:03d}_{kind}.h5"
        if not path.is_file():
            write_sequence(path, sdf_sequence(masks[i], clamp=CLAMP_SHARE * (size.grid - 1)), compression=1)
    exp = folder / "experiment"
    exp.mkdir(exist_ok=True)
    atomic_write_text(exp / "specs.json", json.dumps(specs(data, size), indent=1))
    divides = sum(bool(c.divides_within()) for c in cells) if kind == "divide" else None
    log(f"{kind}: {n} cells ({size.train} train, {size.validation} validation, {size.test} test) at "
        f"{size.grid}³ × {size.frames} frames" + (f"; {divides} divide within the sequence" if divides is not None
                                                    else ""))
    return masks, exp


def train(exp: Path, device: str | None, seed: int, epochs: int, progress: bool, log) -> None:
    """Train, resume an interrupted training, or reuse a finished one."""
    resume = None
    if ws.latest_file(exp).is_file():
        if checkpoints.load_latest(exp)["completed_epoch"] >= epochs:
            log(f"{exp}: already trained, reused")
            return
        resume = "latest"
    t0 = time.time()
    code = training.train(exp, device=device, seed=seed if resume is None else None, resume=resume,
                          progress=progress, log=lambda s: None)
    if code != 0:
        raise SystemExit(code)
    log(f"{exp}: trained in {time.time() - t0:.0f} s")


def validation_frames(frames: int) -> list[int]:
    """About every other frame, the first and the last included."""
    return sorted({round(x) for x in np.linspace(0, frames - 1, (frames + 1) // 2)})


class Decoder:
    """Decodes jobs into mask sequences and canonical shapes, with one progress bar."""

    def __init__(self, model: TrainedModel, size: Size, bar: tqdm) -> None:
        self.model, self.size, self.bar = model, size, bar
        self.canonical_frames = sorted({round(i * (size.frames - 1) / 3) for i in range(4)})

    def masks(self, jobs: list[Job], frames: list[int] | None = None) -> list[np.ndarray]:
        out = []
        for j in jobs:
            out.append(np.stack(list(self.model.frames(j.code, j.angles, frames=frames))) <= 0)
            self.bar.update(1 if frames is None else len(frames) / self.size.frames)
        return out

    def canonical(self, codes: np.ndarray) -> np.ndarray:
        """Codes decoded without rotation on the canonical grid, four frames → bool (n, 4, g, g, g)."""
        g = (self.size.canonical_grid,) * 3
        zero = np.zeros(3, np.float32)
        return np.stack([np.stack(list(self.model.frames(c, zero, g, self.size.frames, frames=self.canonical_frames)))
                         <= 0 for c in codes])


@dataclass
class Drawn:
    """The draws of one way of sampling: per-cell vectors and the best Dice with a training cell."""

    vectors: list[np.ndarray]
    best_dice: np.ndarray


def draw_cells(dec: Decoder, make_jobs, seeds: list[int], train_canonical: np.ndarray,
               frames: list[int] | None = None) -> Drawn:
    """Per seed, the jobs ``make_jobs(seed)`` decoded (only ``frames``, if given) as per-cell vectors, and
    each cell's best Dice with a training cell's canonical shape."""
    vecs, best = [], []
    for s in seeds:
        jobs = make_jobs(s)
        vecs.append(vectors(dec.masks(jobs, frames)))
        best.append(gq.pairwise_dice(dec.canonical(np.stack([j.code for j in jobs])), train_canonical).max(axis=1))
    return Drawn(vecs, np.concatenate(best))


@dataclass
class Held:
    """What every prior is judged with: the validation cells' vectors (on ``frames`` only), the training
    cells' canonical shapes and the copy threshold."""

    validation: np.ndarray
    frames: list[int]
    train_canonical: np.ndarray
    threshold: float


def fit(name: str, model: TrainedModel) -> priors.Prior:
    """The prior ``name`` fitted to the model's codes as ``test.py -t sample`` fits it."""
    return priors.fit_prior(name, model.codes, seed=0, source=str(model.source))


def prior_methods(prior: priors.Prior, dec: Decoder, seed: int, held: Held, log) -> tuple[dict, list[gq.Method]]:
    """One prior of ``test.py -t sample``, fitted as the command fits it (:func:`fit`): its temperature chosen
    on the validation cells (one draw per candidate), then ``draws`` draws at that temperature (and, for the
    default prior, at the command's default temperature too). Returns its record for ``choices.json``
    and its methods, the validated temperature's first."""
    size, name = dec.size, prior.name

    def jobs(s, t):
        return sample_jobs(prior, size.test, t, s)
    candidates = []
    for t in size.temperatures:
        if len(size.temperatures) == 1:
            candidates.append(gq.Candidate(t, float("nan"), float("nan")))
            continue
        v = draw_cells(dec, lambda s, t=t: jobs(s, t), [seed + 1000], held.train_canonical, held.frames)
        candidates.append(gq.Candidate(t, one_nna(held.validation, v.vectors[0]),
                                       float(np.mean(v.best_dice > held.threshold))))
    best = gq.choose(candidates, DEFAULT_TEMPERATURE, gq.nna_standard_error(size.validation))
    if len(size.temperatures) > 1:
        log(f"{name} on the validation cells (temperature: 1-NNA, copies): " + ", ".join(
            f"{c.setting:g}: {c.nna:.3f}, {100 * c.copies:.0f} %" for c in candidates) + f"; chosen {best.setting:g}")
    record = {"temperature": best.setting, "validation_nna": best.nna, "validation_copies": best.copies,
              "candidates": [asdict(c) for c in candidates], "prior": prior.describe()}
    temperatures = [best.setting]
    if name == DEFAULT_PRIOR and best.setting != DEFAULT_TEMPERATURE:
        temperatures.append(DEFAULT_TEMPERATURE)  # what `test.py -t sample` draws without options
        dec.bar.total += size.draws * size.test
    methods = []
    for t in temperatures:
        d = draw_cells(dec, lambda s, t=t: jobs(s, t), [seed + k for k in range(size.draws)], held.train_canonical)
        label = f"sample --prior {name}" + (f" --temperature {t:g}" if t != DEFAULT_TEMPERATURE else "")
        methods.append(gq.Method(label, d.vectors, d.best_dice,
                                 note="default" if name == DEFAULT_PRIOR and t == DEFAULT_TEMPERATURE else ""))
    return record, methods


def cells_picture(dec: Decoder, prior: priors.Prior, test: list[np.ndarray], seed: int, path: Path,
                  kind: str) -> Path:
    """:data:`SHOWN` test cells above as many cells drawn from the default ``prior`` (seed ``seed``): maximum
    projections of the first, middle and last frames."""
    shown = min(SHOWN, len(test))
    drawn = dec.masks(sample_jobs(prior, shown, DEFAULT_TEMPERATURE, seed))
    frames = sorted({0, dec.size.frames // 2, dec.size.frames - 1})
    return gq.plot_cells({"test cells": test[:shown], f"sample --prior {DEFAULT_PRIOR} (default)": drawn}, frames,
                         path, title=f"{kind}: maximum projections along z")


def copy_thresholds(train_canonical: np.ndarray, log) -> tuple[float, float, float, float]:
    """The copy thresholds from the training cells' canonical shapes: the issue's (their mean nearest-neighbour
    Dice) and the stricter :data:`STRICT_QUANTILE` one, each with the share of training cells above it against
    the other training cells."""
    pair = gq.pairwise_dice(train_canonical, train_canonical)
    threshold = calibrate_copy_threshold(pair)
    strict = calibrate_copy_threshold(pair, STRICT_QUANTILE)
    loo, loo_strict = gq.leave_one_out_copies(pair, threshold), gq.leave_one_out_copies(pair, strict)
    log(f"copy threshold (mean nearest-neighbour Dice of distinct training cells' canonical shapes) "
        f"{threshold:.3f}; training cells above it against the other training cells: {100 * loo:.0f} %; "
        f"stricter threshold (their {STRICT_QUANTILE:g} quantile) {strict:.3f}: {100 * loo_strict:.0f} %")
    return threshold, strict, loo, loo_strict


# --------------------------------------------------------------------------
# one kind

def run_kind(kind: str, out: Path, size: Size, args, log) -> tuple[list[gq.Score], list[str], dict]:
    t_kind = time.time()
    masks, exp = prepare(out / kind, kind, size, args.seed, args.retrain, log)
    train(exp, args.device, args.seed, size.epochs, not args.no_progress, log)
    model = load_model(exp, "latest", args.device)
    names = list(vector_names())
    n_tr, n_va = size.train, size.validation
    real = vectors(masks)
    train_v, test_v = real[:n_tr], real[n_tr + n_va:]
    # validation compares shapes on every other frame (the same frames of the validation cells): half the cost
    vf = validation_frames(size.frames)
    val_v = vectors([m[vf] for m in masks[n_tr:n_tr + n_va]])
    temps = size.temperatures
    total = n_tr + len(priors.PRIORS) * len(temps) * size.test * (len(temps) > 1) * len(vf) / size.frames \
        + (1 + len(priors.PRIORS)) * size.draws * size.test
    with tqdm(total=total, unit="cell", desc=kind, disable=args.no_progress, dynamic_ncols=True) as bar:
        dec = Decoder(model, size, bar)
        rec = vectors(dec.masks(original_jobs("reconstruct", model.codes, model.angles, n_tr, 0)))
        train_canon = dec.canonical(model.codes)
        threshold, strict, loo, loo_strict = copy_thresholds(train_canon, lambda m: log(f"{kind}: {m}"))
        rng = np.random.default_rng(args.seed)
        methods = [gq.Method(REAL, gq.subsets(train_v, size.test, size.draws, rng),
                             copies_note=f"{100 * loo:.0f} % (leave-one-out)", note="train split",
                             strict_note=f"{100 * loo_strict:.0f} % (leave-one-out)"),
                   gq.Method(RECONSTRUCTION, gq.subsets(rec, size.test, size.draws, rng), copies_note="100 %",
                             strict_note="100 %")]
        g = draw_cells(dec, lambda s: original_jobs("generate", model.codes, model.angles, size.test, s),
                       [args.seed + d for d in range(size.draws)], train_canon)
        methods.append(gq.Method(GENERATE, g.vectors, g.best_dice))
        held = Held(val_v, vf, train_canon, threshold)
        chosen: dict[str, dict] = {}
        labels: dict[str, str] = {}  # prior → the label of its run at the validated temperature
        fitted = {name: fit(name, model) for name in priors.PRIORS}
        for name, prior in fitted.items():
            chosen[name], runs = prior_methods(prior, dec, args.seed, held, lambda m: log(f"{kind}: {m}"))
            labels[name] = runs[0].name
            methods += runs
        bar.total += SHOWN
        cells_picture(dec, fitted[DEFAULT_PRIOR], masks[n_tr + n_va:], args.seed, out / kind / "cells.png", kind)
    scores = [gq.score_method(test_v, m, names, threshold, strict) for m in methods]
    title = (f"{kind}: {size.train} train / {size.validation} validation / {size.test} test cells, "
             f"{size.grid}³ × {size.frames} frames; {size.draws} draws of {size.test} cells per method; copy "
             f"threshold {threshold:.3f} (Dice of canonical shapes; q95: {strict:.3f})")
    files = gq.write_tables(scores, names, out / kind / "table", title)
    gq.plot_distributions(test_v, methods, names, PLOTTED, out / kind / "distributions.png", title=kind)
    default = next(s.name for s in scores if s.note == "default")
    done = gq.check_done(scores, default, RECONSTRUCTION, [GENERATE, labels["gaussian"]])
    r = next(s for s in scores if s.name == RECONSTRUCTION)
    w = int(np.argmax(r.ks_d))
    info = {"threshold": threshold, "leave_one_out_copies": loo, "strict_threshold": strict,
            "strict_leave_one_out_copies": loo_strict, "chosen": chosen, "seconds": time.time() - t_kind,
            "reconstruction_worst": f"{LABELS[names[w]]} (KS D {r.ks_d[w]:.2f}, median Holm p {r.ks_p[w]:.2g})",
            "validation_best": min(chosen, key=lambda k: (chosen[k]["validation_nna"], k)) if len(temps) > 1 else None}
    atomic_write_text(out / kind / "choices.json", json.dumps(info, indent=1, default=float))
    log(f"{kind}: {time.time() - t_kind:.0f} s; tables {', '.join(str(f) for f in files)}")
    return scores, done, info


def command(args) -> int:
    t0 = time.time()
    size = SIZES["quick" if args.quick else "default"]
    if args.draws is not None:
        if args.draws < 2:
            raise UserError(f"--draws {args.draws}: expected an integer >= 2 (a standard error needs two)")
        size = Size(**{**asdict(size), "draws": args.draws})
    out = Path(args.out)
    sections = []
    for kind in args.kinds:
        if kind not in KINDS:
            raise UserError(f"--kinds {kind}: expected some of {', '.join(KINDS)}")
    for kind in args.kinds:
        _, done, info = run_kind(kind, out, size, args, lambda m: print(m, flush=True))
        text = [f"## {kind}", "", (out / kind / "table.md").read_text().strip(), "",
                f"Copies: canonical shapes with a Dice above {info['threshold']:.3f} with a training cell's; the "
                f"training cells themselves, each against the others: {100 * info['leave_one_out_copies']:.0f} %. "
                f"Copies (q95): above {info['strict_threshold']:.3f}, the {STRICT_QUANTILE:g} quantile of the training "
                f"cells' nearest-neighbour Dice (training cells: {100 * info['strict_leave_one_out_copies']:.0f} %).",
                f"Reconstructions against the test cells, largest difference: {info['reconstruction_worst']}.", ""]
        if info["validation_best"] is not None:
            text.append("Validation (temperature, 1-NNA against the validation cells, copies): " + "; ".join(
                f"{k} τ = {v['temperature']:g} ({v['validation_nna']:.3f}, {100 * v['validation_copies']:.0f} %)"
                for k, v in info["chosen"].items()) + f"; lowest: {info['validation_best']}.")
            text.append("")
        text += [f"Default `sample` (--prior {DEFAULT_PRIOR}) against the issue's bar:", ""]
        text += [f"* {line}" for line in done] + [""]
        sections.append("\n".join(text))
        print()
        print("\n".join(text), flush=True)
    minutes = (time.time() - t0) / 60
    summary = (f"# Generated cells against held-out cells\n\n`python benchmarks/generation_quality.py"
               f"{' --quick' if args.quick else ''}` (seed {args.seed}): {minutes:.1f} min.\n\n" + "\n".join(sections))
    atomic_write_text(out / "summary.md", summary)
    print(f"summary: {out / 'summary.md'}; total {minutes:.1f} min")
    return 0


def main(argv=None) -> int:
    p = base.parser("benchmarks/generation_quality.py", __doc__.splitlines()[0], [
        "python benchmarks/generation_quality.py --quick",
        "python benchmarks/generation_quality.py --kinds deform --out /tmp/gq"])
    p.add_argument("--quick", action="store_true", help="a smaller run (32³ × 6 frames, 2 draws, one temperature)")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), help=f"kinds of cell (default: {' '.join(KINDS)})")
    p.add_argument("--out", default="generation_quality", help="output folder (default generation_quality/)")
    p.add_argument("--draws", type=int, help="draws per method (default 5; --quick 2)")
    p.add_argument("--retrain", action="store_true", help="remove an earlier run in --out and start over")
    base.add_device(p)
    base.add_seed(p, default=0)
    base.add_progress(p)
    return base.run(p, command, argv)


if __name__ == "__main__":
    sys.exit(main())
