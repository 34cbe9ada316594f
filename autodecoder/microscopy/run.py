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
from autodecoder.decoding.options import LatentOptions, Shard
from autodecoder.decoding.trained import TrainedModel, load_model
from autodecoder.decoding.types import plan
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import (REPLACE_FLAG, atomic_write_text, clean_stale_temporaries,
                                           ensure_writable_dir, hold_output_lock, temp_name)
from autodecoder.io.discovery import collect_sequences
from autodecoder.microscopy.cells import Cell, ModelCell, file_cells
from autodecoder.microscopy.config import SynthesisConfig
from autodecoder.microscopy.frames import FrameRenderer
from autodecoder.microscopy.synthesis import OWN_ENTRIES, RECORD, SHARD_RECORDS, plan_sequence, write_sequence

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


def _dataset_entries(out: Path) -> list[Path]:
    """What a dataset puts in ``out``: its own entries and the sequences' CTC folders (``01``, ``01_GT`` …)."""
    return [p for p in out.iterdir() if p.name in OWN_ENTRIES or (p.name[:2].isdigit() and len(p.name) in (2, 5))]


def _check_folder(out: Path, replace: bool, log: Log) -> None:
    """Refuse a folder that holds a dataset (``synthesis.json`` or CTC folders) unless ``replace`` removes it."""
    found = _dataset_entries(out)
    if not found:
        return
    if not replace:
        raise UserError(f"{out}: holds a synthetic dataset already ({', '.join(sorted(p.name for p in found)[:4])}); "
                        f"pass {REPLACE_FLAG} to remove it first, or choose another output folder")
    for p in found:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    log(f"note: {out}: removed the earlier dataset ({len(found)} entries), as {REPLACE_FLAG} asks")


#: The parts of a record that every shard of one synthesis shares (the rest: its sequences, its time).
_SHARED = ("autodecoder_version", "seed", "config", "cells_from")


def _shard_record(out: Path, shard: Shard) -> Path:
    return out / SHARD_RECORDS / f"{shard.index}-of-{shard.count}.json"


def _check_shard_folder(out: Path, shard: Shard, numbers: list[int], head: dict[str, Any]) -> None:
    """A shard writes next to its siblings, never over a finished dataset, its own earlier output or a
    sibling of another synthesis (other seed, settings or cells)."""
    if (out / RECORD).exists():
        raise UserError(f"{out}: holds a finished synthetic dataset ({RECORD}); clear the folder or choose another "
                        f"for --shard {shard}")
    head = json.loads(json.dumps(head))  # as read back (tuples become lists)
    mine = [p.name for p in _dataset_entries(out) if p.name[:2].isdigit() and int(p.name[:2]) in numbers]
    if mine:
        raise UserError(f"{out}: holds sequence folders of shard {shard} already ({', '.join(sorted(mine)[:4])}); "
                        "clear them to run this shard again")
    for other in sorted((out / SHARD_RECORDS).glob("*.json")):
        record = json.loads(other.read_text())
        differ = [k for k in _SHARED if record.get(k) != head[k]]
        if differ or not other.name.endswith(f"-of-{shard.count}.json"):
            what = ", ".join(differ) or "the number of shards"
            raise UserError(f"{other}: a shard of another synthesis (its {what} differ from this run's); "
                            "use a new output folder for this one")


def _merge_shard_records(out: Path, count: int, log: Log) -> Path | None:
    """When every shard's record is there, write the dataset's ``synthesis.json``: that of one run with all
    the sequences (``created``: the earliest shard's start)."""
    records = [out / SHARD_RECORDS / f"{i}-of-{count}.json" for i in range(count)]
    if not all(r.is_file() for r in records):
        log(f"synthesis: {sum(r.is_file() for r in records)} of {count} shards done; the last one writes {RECORD}")
        return None
    parts = [json.loads(r.read_text()) for r in records]
    merged = {**parts[0], "created": min(p["created"] for p in parts),
              "sequences": sorted((q for p in parts for q in p["sequences"]), key=lambda q: q["sequence"])}
    atomic_write_text(out / RECORD, json.dumps(merged, indent=1) + "\n")  # every last shard writes the same
    return out / RECORD


def _move_into(source: Path, target: Path) -> None:
    """Move the staged entries into ``target``, merging folders that siblings (other shards) made too."""
    for entry in sorted(source.iterdir()):
        there = target / entry.name
        if entry.is_dir() and there.is_dir():
            _move_into(entry, there)
        else:
            entry.replace(there)


def synthesize(source: ModelSource | FileSource, config: SynthesisConfig, out: str | Path, seed: int,
               progress: bool = True, log: Log = print, replace: bool = False, shard: Shard | None = None) -> Path:
    """Write ``config.output.sequences`` synthetic sequences into ``out``; returns ``out/synthesis.json``.

    ``shard``: write only sequences ``k`` (counted from 1) with ``(k - 1) mod N == I``, each exactly as one
    run writes it (the seed must be the same for every shard); shards may run at once into one folder (each
    holds the lock of ``<out>/.shard-I-of-N``), and the last to finish writes ``synthesis.json``.
    """
    out = ensure_writable_dir(Path(out), "output")
    numbers = list(range(1, config.output.sequences + 1))
    if shard is not None:
        numbers = shard.take(numbers)
    with hold_output_lock(out, shard.lock_folder if shard else None, f"shard {shard}", log):
        record = _head(source, config, seed)
        if shard is None:
            _check_folder(out, replace, log)
            clean_stale_temporaries(out, log)
        else:
            _check_shard_folder(out, shard, numbers, record)
        staging = temp_name(out / ("dataset" if shard is None else f"dataset-{shard.index}-of-{shard.count}"))
        staging.mkdir()
        try:
            _run(source, config, staging, seed, numbers, record, progress, log)
            _move_into(staging, out)  # complete: move it into place
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if shard is None:
            atomic_write_text(out / RECORD, json.dumps(record, indent=1) + "\n")
        else:
            (out / SHARD_RECORDS).mkdir(exist_ok=True)
            atomic_write_text(_shard_record(out, shard), json.dumps(record, indent=1) + "\n")
    done = _merge_shard_records(out, shard.count, log) if shard is not None else out / RECORD
    log(f"synthesis: {len(numbers)} sequence(s){f' (shard {shard})' if shard else ''} of {config.field.frames} "
        f"frames → {out}")
    return done if done is not None else _shard_record(out, shard)


def _head(source: ModelSource | FileSource, config: SynthesisConfig, seed: int) -> dict[str, Any]:
    """The record's parts that hold for the whole dataset."""
    return {"autodecoder_version": __version__, "seed": seed, "config": config.as_dict(),
            "cells_from": source.info(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "sequences": []}


def _run(source: ModelSource | FileSource, config: SynthesisConfig, root: Path, seed: int, numbers: list[int],
         record: dict[str, Any], progress: bool, log: Log) -> None:
    renderer = FrameRenderer(config)
    total = len(numbers) * config.field.frames
    with tqdm(total=total, unit="frame", disable=not progress, dynamic_ncols=True, desc="synthesis") as bar:
        for k in numbers:
            cells = source.cells(config.cells.count, seed, k)
            sequence = plan_sequence(cells, config, seed, k)
            log(f"sequence {k:02d}: {len(cells)} cells, bounding radii "
                + ", ".join(f"{r:.1f}" for r in sequence.radii_um) + " µm")
            write_sequence(sequence, renderer, config, seed, k, root, bar)
            record["sequences"].append({"sequence": f"{k:02d}", **sequence.record})
