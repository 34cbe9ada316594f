"""Does synthetic microscopy help a segmentation network, and what does each synthesis stage buy?

The benchmark of ``benchmarks/segmentation_transfer.py``, step by step (``out`` is its folder):

1. **Cells** (``out/cells/{train,test,unlabelled}``): three disjoint populations of phantom cells
   from the deterministic generator :func:`autodecoder.demo.phantoms.phantom_sequence` (dividing,
   filopodial and deforming cells; seeds :data:`POPULATIONS`, none of them the demo's), turned
   into SDF files by the project's mask → SDF conversion (:func:`autodecoder.io.mask_sdf.sdf_sequence`,
   clamp 8 voxels at 64³ scaled to the grid) — no auto-decoder is trained.
2. **Training data** (``out/data/train_<stage>``), one synthetic CTC dataset per stage of the
   pipeline, all with the training cells, the same scene seed and so the same cells in the same
   places (:data:`SWITCHES`): ``masks`` (no PSF, no noise, no texture: the compartments' uniform
   fluorescence), ``psf`` (+ optics), ``noise`` (+ camera noise), ``texture`` (+ texture: the full
   pipeline) and ``realism`` (the full pipeline's images translated by the learned realism step,
   :mod:`autodecoder.realism`, trained once, unpaired, on ``realism_steps`` steps; ground truth
   copied untouched).
3. **Test data**: by default a held-out synthetic dataset (``out/data/test``: the test cells,
   another scene seed, the full pipeline), which checks the pipeline, not realism; or the user's
   annotated CTC dataset (``test``). The realism step's "real" images are a separate unlabelled
   synthetic set (``out/data/unlabelled``) by default — never the test set —, the real test
   dataset's images (used without their labels) with ``test``, or ``real_unlabelled``.
4. **Runs** (``out/runs/<stage>/seed_<k>``): a network trained from scratch on each stage's data
   for each seed (:mod:`autodecoder.evaluation.segmentation`), its instances written as
   ``NN_RES`` for every test sequence, validated and scored (SEG, DET;
   :mod:`autodecoder.evaluation.ctc_scores`); ``scores.json`` records a finished run, which a
   later run with the same settings reuses (so an interrupted benchmark resumes).
5. **Tables**: ``results.csv`` (a row per stage, seed and test sequence), ``summary.csv`` and
   ``table.md`` (per stage: mean ± sample standard deviation over seeds of the per-seed score,
   itself the mean over test sequences), ``scores.png`` (bars with error bars, seeds as dots).

``settings.json`` records what the results depend on; a folder holding results of other settings is
refused unless ``replace`` (``--replace``) removes them. ``--stages`` and ``--seeds`` may change
freely: they only select runs.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace as dc_replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from autodecoder.demo.phantoms import phantom_sequence
from autodecoder.evaluation.ctc_scores import METRICS, annotated_sequences, score_result, validate_result, write_result
from autodecoder.evaluation.report import md_table, write_csv
from autodecoder.evaluation.segmentation import SegmentationSettings, load_training_frames, segment_frames, \
    train_network
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import atomic_write_text, check_output_folder, ensure_writable_dir, hold_lock
from autodecoder.io.mask_sdf import sdf_sequence
from autodecoder.io.pictures import plt, save_figure
from autodecoder.io.sequences import write_sequence
from autodecoder.microscopy.config import build_config
from autodecoder.microscopy.datasets import collect_images
from autodecoder.microscopy.run import FileSource, synthesize
from autodecoder.microscopy.synthesis import RECORD
from autodecoder.realism import networks as realism_networks
from autodecoder.realism.apply import apply as realism_apply
from autodecoder.realism.train import train as realism_train

__all__ = ["STAGES", "TITLES", "SWITCHES", "POPULATIONS", "TransferSettings", "realism_available", "make_cells",
           "synthesis_config", "run_transfer", "summarise", "Outcome"]

Log = Callable[[str], None]

#: The stages, in pipeline order.
STAGES = ("masks", "psf", "noise", "texture", "realism")
#: Their names in tables.
TITLES = {"masks": "masks only", "psf": "+ PSF", "noise": "+ noise", "texture": "+ texture (full pipeline)",
          "realism": "+ learned realism"}
#: The synthesis switches of each stage (``synthesize.py --no-psf --no-noise --no-texture``).
SWITCHES: dict[str, dict[str, dict[str, Any]]] = {
    "masks": {"optics": {"psf": False}, "camera": {"noise": False}, "phantom": {"texture": False}},
    "psf": {"camera": {"noise": False}, "phantom": {"texture": False}},
    "noise": {"phantom": {"texture": False}},
    "texture": {},
}
#: Cell populations: (kinds in turn, seed of the first cell; cell i has seed + i) and the scene seed.
POPULATIONS = {"train": (("divide", "filo", "deform", "divide"), 1000, 11),
               "test": (("deform", "divide", "filo", "divide"), 2000, 22),
               "unlabelled": (("filo", "divide", "deform", "divide"), 3000, 33)}
#: Seed of the realism step's training (one model for every segmentation seed).
REALISM_SEED = 0
#: The scene: cells packed close (touching now and then), divisions inside the movie.
SCENE = {"layout": "cluster", "min_gap_um": -1.5, "offset_frames": 3}


@dataclass(frozen=True)
class TransferSettings:
    """What the benchmark computes. Lengths in µm, sizes in voxels ``(Z, Y, X)`` unless named ``xyz``."""

    shape_zyx: tuple[int, int, int] = (32, 96, 96)
    voxel_size_xyz: tuple[float, float, float] = (0.5, 0.5, 0.5)
    cube_size_um: float = 15.0  # the phantoms' cube: cells about 5–7 µm across (35–45 %), filopodia more
    frames: int = 10
    sequences: int = 1  # training sequences per stage (each its own scene of the same cells)
    cells: int = 4
    phantom_grid: int = 48
    segmentation: SegmentationSettings = field(default_factory=SegmentationSettings)
    realism_steps: int = 400
    test: str | None = None  # the user's annotated CTC dataset; None: held-out synthetic
    real_unlabelled: str | None = None  # the realism step's "real" images; None: see the module docstring

    def record(self) -> dict[str, Any]:
        """The settings results depend on (``settings.json``)."""
        return {"shape_zyx": list(self.shape_zyx), "voxel_size_xyz": list(self.voxel_size_xyz),
                "cube_size_um": self.cube_size_um, "frames": self.frames, "sequences": self.sequences,
                "cells": self.cells, "phantom_grid": self.phantom_grid, "populations": _jsonable(POPULATIONS),
                "scene": SCENE, "realism_steps": self.realism_steps, "test": _resolved(self.test),
                "real_unlabelled": _resolved(self.real_unlabelled),
                **{f"segmentation.{k}": v for k, v in self.segmentation.as_dict().items()}}


@dataclass
class Outcome:
    """What :func:`run_transfer` found: the rows of ``results.csv`` and ``summary.csv``, the note
    above the table, the Markdown table and the files written."""

    rows: list[dict]
    summary: list[dict]
    note: str
    table: str
    files: list[Path]


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x))


def _resolved(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def realism_available() -> bool:
    """True when the learned realism step can run: MONAI (the ``realism`` extra) is installed."""
    return realism_networks.UNet is not None


# --------------------------------------------------------------------------
# data

def make_cells(folder: Path, kinds: Sequence[str], first_seed: int, grid: int, frames: int) -> Path:
    """Phantom cells ``cell_<i>_<kind>.h5`` (SDF ``(T, X, Y, Z)``, ``grid``³, ``frames`` frames, seed
    ``first_seed + i``) in ``folder``; files already there are kept (same seeds give the same cells)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, kind in enumerate(kinds):
        path = folder / f"cell_{i}_{kind}.h5"
        if not path.is_file():
            masks = phantom_sequence(kind, grid=grid, frames=frames, seed=first_seed + i)
            write_sequence(path, sdf_sequence(masks, clamp=8.0 * (grid - 1) / 63), compression=1)
    return folder


def synthesis_config(settings: TransferSettings, stage: str, sequences: int = 1):
    """The synthesis configuration of ``stage`` (``masks``, ``psf``, ``noise`` or ``texture``)."""
    over: dict[str, dict[str, Any]] = {
        "field": {"shape_zyx": list(settings.shape_zyx), "voxel_size_xyz": list(settings.voxel_size_xyz),
                  "frames": settings.frames, "cube_size_um": settings.cube_size_um},
        "cells": {"count": settings.cells}, "scene": dict(SCENE),
        "output": {"ome_tiff": False, "projections": False, "sequences": sequences}}
    for section, keys in SWITCHES[stage].items():
        over.setdefault(section, {}).update(keys)
    return build_config(overrides=over)


def _synthesise(cells: Path, settings: TransferSettings, stage: str, out: Path, seed: int, sequences: int,
                log: Log) -> Path:
    """A synthetic CTC dataset in ``out`` (kept when complete: ``synthesis.json`` is written last)."""
    if (out / RECORD).is_file():
        return out
    log(f"synthesis: {out.name} ({TITLES.get(stage, stage)}, seed {seed})")
    synthesize(FileSource([cells]), synthesis_config(settings, stage, sequences), out, seed, progress=False,
               log=lambda s: None, replace=True)
    return out


def _realism_dataset(synthetic: Path, real: Path, model: Path, out: Path, steps: int, device: torch.device,
                     seed: int, log: Log) -> Path:
    """The full pipeline's dataset ``synthetic`` translated by the learned realism step into ``out``."""
    if not realism_available():
        raise UserError(f"stage realism: {realism_networks.MISSING_MONAI}; or leave 'realism' out of --stages")
    done_model, done_data = model.with_name(model.name + ".done"), out.with_name(out.name + ".done")
    if not done_model.is_file():
        shutil.rmtree(model, ignore_errors=True)
        log(f"realism: training on {real} (real) and {synthetic} (synthetic), {steps} steps")
        status = realism_train(real, synthetic, model, overrides={"steps": steps, "seed": seed}, device=str(device),
                               progress=False, log=log)
        if status:  # stopped by Ctrl-C: its checkpoint is kept, but this stage starts over next time
            raise KeyboardInterrupt
        atomic_write_text(done_model, "trained\n")
    if not done_data.is_file():
        shutil.rmtree(out, ignore_errors=True)
        log(f"realism: translating {synthetic.name} → {out.name}")
        realism_apply(model, synthetic, out, device=str(device), progress=False, log=log)
        atomic_write_text(done_data, "applied\n")
    return out


def _datasets(settings: TransferSettings, stages: Sequence[str], out: Path, device: torch.device,
              log: Log) -> tuple[dict[str, Path], Path]:
    """The training dataset of each stage and the test dataset's root."""
    unlabelled = "realism" in stages and settings.test is None and settings.real_unlabelled is None
    needed = {"train": True, "test": settings.test is None, "unlabelled": unlabelled}
    cells = {name: make_cells(out / "cells" / name, [kinds[i % len(kinds)] for i in range(settings.cells)], seed,
                              settings.phantom_grid, settings.frames)
             for name, (kinds, seed, _) in POPULATIONS.items() if needed[name]}
    data, scene = out / "data", {name: s for name, (_, _, s) in POPULATIONS.items()}
    train: dict[str, Path] = {}
    for stage in stages:
        base = "texture" if stage == "realism" else stage
        if base not in train:
            train[base] = _synthesise(cells["train"], settings, base, data / f"train_{base}", scene["train"],
                                      settings.sequences, log)
    test = Path(settings.test) if settings.test else _synthesise(cells["test"], settings, "texture",
                                                                 data / "test", scene["test"], 1, log)
    if "realism" in stages:
        if unlabelled:
            real = _synthesise(cells["unlabelled"], settings, "texture", data / "unlabelled", scene["unlabelled"], 1,
                               log)
        else:
            real = Path(settings.real_unlabelled or settings.test or "")
        train["realism"] = _realism_dataset(train["texture"], real, out / "realism_model", data / "train_realism",
                                            settings.realism_steps, device, REALISM_SEED, log)
    return {s: train[s] for s in stages}, test


# --------------------------------------------------------------------------
# runs

def _run(stage: str, seed: int, train: Path, sequences: list[tuple[Path, Path]], settings: TransferSettings,
         folder: Path, device: torch.device, progress: bool, log: Log) -> dict:
    """Train on ``train`` with ``seed``, segment and score every test sequence; ``scores.json``."""
    record_path = folder / "scores.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    net, training = train_network(load_training_frames(train), settings.segmentation, seed, device, progress,
                                  desc=f"{stage} seed {seed}")
    per_sequence = []
    for images, gt in sequences:
        n = len(collect_images(images, what="test images").frames)
        res = write_result(folder / f"{images.name}_RES", segment_frames(net, images, settings.segmentation, device,
                                                                         progress), n)
        valid = validate_result(res)
        scores = score_result(res, gt) if valid else {m: None for m in METRICS}
        per_sequence.append({"sequence": images.name, "valid": valid, **scores})
    record = {"stage": stage, "seed": seed, "training": training, "sequences": per_sequence}
    atomic_write_text(record_path, json.dumps(record, indent=1) + "\n")
    seg = ", ".join(f"{s['sequence']}: SEG {_fmt(s['SEG'])} DET {_fmt(s['DET'])}" for s in per_sequence)
    log(f"{stage:8s} seed {seed}: {training['steps']} steps in {training['seconds']:.0f} s, loss "
        f"{training['loss_first']:.3f} → {training['loss_last']:.3f}; {seg}")
    return record


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _rows(records: list[dict]) -> list[dict]:
    return [{"stage": r["stage"], "seed": r["seed"], "sequence": s["sequence"], "SEG": s["SEG"], "DET": s["DET"],
             "valid": int(s["valid"]), "train_seconds": r["training"]["seconds"], "steps": r["training"]["steps"],
             "loss_last": r["training"]["loss_last"]} for r in records for s in r["sequences"]]


def summarise(rows: Sequence[dict], stages: Sequence[str]) -> list[dict]:
    """Per stage: each metric's mean and sample standard deviation (ddof 1; NaN for one seed) over the
    seeds of the per-seed value, the mean over that seed's test sequences (missing values left out)."""
    out = []
    for stage in stages:
        mine = [r for r in rows if r["stage"] == stage]
        seeds = sorted({r["seed"] for r in mine})
        row: dict[str, Any] = {"stage": stage, "title": TITLES[stage], "seeds": len(seeds)}
        for m in METRICS:
            per_seed = [np.mean(v) for s in seeds
                        if (v := [r[m] for r in mine if r["seed"] == s and r[m] is not None])]
            row[f"{m}_mean"] = float(np.mean(per_seed)) if per_seed else None
            row[f"{m}_sd"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan")
        out.append(row)
    return out


def _table(summary: Sequence[dict]) -> str:
    def cell(r: dict, m: str) -> str:
        mean, sd = r[f"{m}_mean"], r[f"{m}_sd"]
        return "–" if mean is None else f"{mean:.3f} ± {_fmt(sd)}"
    return md_table(["stage", "training images", "SEG (mean ± sd)", "DET (mean ± sd)", "seeds"],
                    [[str(i + 1), r["title"], cell(r, "SEG"), cell(r, "DET"), str(r["seeds"])]
                     for i, r in enumerate(summary)])


def _plot(rows: Sequence[dict], summary: Sequence[dict], path: Path, note: str) -> Path:
    """Bars of the mean SEG and DET per stage, error bars ± sd over seeds, each seed a dot."""
    fig, ax = plt.subplots(figsize=(1.6 * len(summary) + 2.5, 4.2), dpi=110)
    x, width = np.arange(len(summary)), 0.38
    for j, (m, colour) in enumerate(zip(METRICS, ("#4C72B0", "#DD8452"))):
        means = [r[f"{m}_mean"] if r[f"{m}_mean"] is not None else np.nan for r in summary]
        sds = [r[f"{m}_sd"] if np.isfinite(r[f"{m}_sd"]) else 0.0 for r in summary]
        pos = x + (j - 0.5) * width
        ax.bar(pos, means, width, yerr=sds, capsize=4, color=colour, label=m, alpha=0.85)
        for i, r in enumerate(summary):
            seeds = sorted({q["seed"] for q in rows if q["stage"] == r["stage"]})
            vals = [np.mean(v) for s in seeds if (v := [q[m] for q in rows if q["stage"] == r["stage"]
                                                        and q["seed"] == s and q[m] is not None])]
            ax.plot([pos[i]] * len(vals), vals, "k.", ms=4)
    ax.set_xticks(x, [r["title"].replace(" (full pipeline)", "\n(full pipeline)") for r in summary], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (CTC)")
    ax.set_title(note, fontsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def _note(settings: TransferSettings, stages: Sequence[str]) -> str:
    if settings.test is None:
        return ("Test data: held-out synthetic cells (other cells, other seed, full pipeline) — this table checks "
                "the synthesis pipeline, not realism.")
    note = f"Test data: {settings.test} (annotated: SEG where NN_GT/SEG, DET where NN_GT/TRA exist)."
    if "realism" in stages:
        real = settings.real_unlabelled or f"{settings.test}'s own images, used without their labels"
        note += f" Realism step trained on {real}."
    return note


# --------------------------------------------------------------------------

def _check_settings(out: Path, settings: TransferSettings, replace: bool, log: Log) -> None:
    """Refuse results of other settings in ``out`` (``replace``: remove them), then record ours."""
    record = settings.record()

    def read(path: Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
    removed = check_output_folder(out, record, tuple(record), read, "settings.json", replace, log)
    if removed:
        for name in ("cells", "data", "runs", "realism_model"):
            shutil.rmtree(out / name, ignore_errors=True)
        (out / "realism_model.done").unlink(missing_ok=True)
    atomic_write_text(out / "settings.json", json.dumps(record, indent=1) + "\n")


def run_transfer(settings: TransferSettings, stages: Sequence[str], seeds: int, out: str | Path,
                 device: torch.device, progress: bool = True, log: Log = print, replace: bool = False) -> Outcome:
    """Run the benchmark (see the module docstring) into ``out``; returns the tables and files."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise UserError(f"--stages {','.join(stages)}: expected some of {','.join(STAGES)}")
    if seeds < 1:
        raise UserError(f"--seeds {seeds}: expected an integer >= 1 (3 or more for a standard deviation)")
    stages = [s for s in STAGES if s in stages]
    out = ensure_writable_dir(Path(out), "output")
    with hold_lock(out, "the benchmark folder", log):
        _check_settings(out, settings, replace, log)
        train, test = _datasets(settings, stages, out, device, log)
        sequences = annotated_sequences(test)
        records = [_run(stage, seed, train[stage], sequences, settings, out / "runs" / stage / f"seed_{seed}", device,
                        progress, log) for stage in stages for seed in range(seeds)]
        rows = _rows(records)
        summary = summarise(rows, stages)
        note, table = _note(settings, stages), _table(summary)
        files = [write_csv(out / "results.csv", rows, list(rows[0])),
                 write_csv(out / "summary.csv", summary, list(summary[0]))]
        atomic_write_text(out / "table.md", f"{note}\n\n{table}\n")
        files += [out / "table.md", _plot(rows, summary, out / "scores.png", note)]
    return Outcome(rows, summary, note, table, files)


def quick(settings: TransferSettings) -> TransferSettings:
    """The ``--quick`` settings: 6 frames, 80 training steps, 50 realism steps (a few minutes)."""
    return dc_replace(settings, frames=6, realism_steps=50,
                      segmentation=dc_replace(settings.segmentation, steps=80))
