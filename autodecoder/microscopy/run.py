"""``synthesize.py``: where the cells come from, and the dataset folder (lock, staging, record).

Cells come from a trained model with ``test.py``'s own options (``-t sample`` by default — the
project's way to new cells —, ``generate``, ``generate_filo``, or ``reconstruct`` for the first
``--num`` learned cells), each sequence drawing its own cells from the seed; or from files
(``--inputs``: SDF sequences and mask TIFFs, found as everywhere in the project). The output folder
is locked while the run writes; a folder holding another synthesis is refused unless ``--replace``;
the dataset is built in a hidden staging folder and moved into place when complete.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from autodecoder import __version__
from autodecoder.decoding.options import LatentOptions
from autodecoder.decoding.trained import TrainedModel, load_model
from autodecoder.decoding.types import plan
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import (REPLACE_FLAG, atomic_write_text, clean_stale_temporaries,
                                           ensure_writable_dir, hold_lock, temp_name)
from autodecoder.io.discovery import collect_sequences
from autodecoder.microscopy.cells import Cell, ModelCell, file_cells
from autodecoder.microscopy.config import SynthesisConfig
from autodecoder.microscopy.frames import FrameRenderer
from autodecoder.microscopy.synthesis import OWN_ENTRIES, RECORD, plan_sequence, write_sequence

#: The types of ``test.py`` that can provide cells.
CELL_TYPES = ("sample", "generate", "generate_filo", "reconstruct")

Log = Callable[[str], None]


class ModelSource:
    """Cells of a trained model: ``count`` jobs of type ``kind`` per sequence, drawn from (seed, sequence)."""

    def __init__(self, exp: str | Path, epoch: str | int | None, device: str | None, kind: str,
                 options: LatentOptions | None, adaptive: bool) -> None:
        if kind not in CELL_TYPES:
            raise UserError(f"-t {kind}: expected one of {', '.join(CELL_TYPES)}")
        self.model: TrainedModel = load_model(exp, epoch, device)
        self.kind, self.options, self.adaptive = kind, options or LatentOptions(), adaptive

    def cells(self, count: int, seed: int, k: int) -> list[Cell]:
        m = self.model
        opts = LatentOptions(**{**self.options.__dict__, "num": count}) if self.kind == "sample" else None
        jobs = plan(self.kind, m.codes, m.angles, max(m.specs["NumSequences"], count), seed * 1000 + k, opts)
        if len(jobs) < count:
            raise UserError(f"--num {count}: -t {self.kind} gives {len(jobs)} cells of this model; ask for fewer")
        return [ModelCell(m, j.code, j.angles, f"cell_{i:03d}", self.adaptive, j.origin)
                for i, j in enumerate(jobs[:count])]

    def info(self) -> dict[str, Any]:
        m = self.model
        return {"source": "model", "experiment": str(m.experiment.resolve()), "checkpoint": str(m.source.resolve()),
                "epoch": m.epoch, "type": self.kind}


class FileSource:
    """Cells from files: the sequences found in ``paths``, in turn (repeated when more cells are asked for),
    the same ones in every sequence."""

    def __init__(self, paths: list[str | Path]) -> None:
        self.paths = [str(p) for p in paths]
        self.found = file_cells(collect_sequences(paths, "input"))

    def cells(self, count: int, seed: int, k: int) -> list[Cell]:
        return [self.found[i % len(self.found)] for i in range(count)]

    def info(self) -> dict[str, Any]:
        return {"source": "files", "inputs": self.paths, "cells": len(self.found)}


def _check_folder(out: Path, replace: bool, log: Log) -> None:
    """Refuse a folder that holds a dataset (``synthesis.json`` or CTC folders) unless ``replace`` removes it."""
    found = [p for p in out.iterdir() if p.name in OWN_ENTRIES or (p.name[:2].isdigit() and len(p.name) in (2, 5))]
    if not found:
        return
    if not replace:
        raise UserError(f"{out}: holds a synthetic dataset already ({', '.join(sorted(p.name for p in found)[:4])}); "
                        f"pass {REPLACE_FLAG} to remove it first, or choose another output folder")
    for p in found:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    log(f"note: {out}: removed the earlier dataset ({len(found)} entries), as {REPLACE_FLAG} asks")


def synthesize(source: ModelSource | FileSource, config: SynthesisConfig, out: str | Path, seed: int,
               progress: bool = True, log: Log = print, replace: bool = False) -> Path:
    """Write ``config.output.sequences`` synthetic sequences into ``out``; returns ``out/synthesis.json``."""
    out = ensure_writable_dir(Path(out), "output")
    with hold_lock(out, "the output folder", log):
        _check_folder(out, replace, log)
        clean_stale_temporaries(out, log)
        staging = temp_name(out / "dataset")
        staging.mkdir()
        try:
            record = _run(source, config, staging, seed, progress, log)
            for entry in sorted(staging.iterdir()):  # complete: move it into place
                entry.replace(out / entry.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        atomic_write_text(out / RECORD, json.dumps(record, indent=1) + "\n")
    log(f"synthesis: {config.output.sequences} sequence(s) of {config.field.frames} frames → {out}")
    return out / RECORD


def _run(source: ModelSource | FileSource, config: SynthesisConfig, root: Path, seed: int, progress: bool,
         log: Log) -> dict[str, Any]:
    renderer = FrameRenderer(config)
    record: dict[str, Any] = {"autodecoder_version": __version__, "seed": seed, "config": config.as_dict(),
                              "cells_from": source.info(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                              "sequences": []}
    total = config.output.sequences * config.field.frames
    with tqdm(total=total, unit="frame", disable=not progress, dynamic_ncols=True, desc="synthesis") as bar:
        for k in range(1, config.output.sequences + 1):
            cells = source.cells(config.cells.count, seed, k)
            sequence = plan_sequence(cells, config, seed, k)
            log(f"sequence {k:02d}: {len(cells)} cells, bounding radii "
                + ", ".join(f"{r:.1f}" for r in sequence.radii_um) + " µm")
            write_sequence(sequence, renderer, config, seed, k, root, bar)
            record["sequences"].append({"sequence": f"{k:02d}", **sequence.record})
    return record
