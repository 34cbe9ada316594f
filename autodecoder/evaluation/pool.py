"""The shape descriptors of many sequences, computed in worker processes with a progress bar.

A *task* is one frame (or, for a MAT v5 file that is read whole, every frame of the file);
:func:`run_tasks` runs the tasks in this process or in ``spawn``-ed worker processes and returns
``(sequence index, frame, descriptors)`` rows in order. :func:`describe` does it for the sequences
found by :func:`autodecoder.io.discovery.collect_sequences` and adds the per-sequence descriptors.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from autodecoder.evaluation import descriptors as desc
from autodecoder.experiment.errors import UserError
from autodecoder.io.discovery import SequenceSource, collect_sequences, frame_volumes, is_whole_file

__all__ = ["IN_PROCESS_VOXELS", "default_workers", "check_options", "Task", "make_tasks", "run_tasks",
           "DescribedSet", "describe"]

#: Below this many voxels in all (about 64 frames of 64³) ``workers=None`` computes in this process.
IN_PROCESS_VOXELS = 1 << 24

Row = tuple[int, int, dict[str, float]]


def default_workers() -> int:
    """Worker processes by default: the CPU count, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def check_options(surface: str, min_component_voxels: int) -> None:
    """Raise :class:`UserError` for descriptor options out of range."""
    if surface not in desc.SURFACES:
        raise UserError(f"--surface {surface}: expected one of {', '.join(desc.SURFACES)}")
    if min_component_voxels < 1:
        raise UserError(f"--min-component-voxels {min_component_voxels}: expected an integer >= 1")


def masks(src: SequenceSource, frames: Iterable[int], threshold: float = 0.0
          ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield ``(frame, mask, sdf or None)`` for ``frames`` of ``src``, each ``(X, Y, Z)``: cells are
    ``sdf <= threshold`` in SDF files and ``value > 0`` in TIFFs."""
    for t, vol in frame_volumes(src, frames):
        if src.kind == "sdf":
            yield t, vol <= threshold, vol
        else:
            yield t, vol > 0, None


@dataclass(frozen=True)
class Task:
    """The frames of one sequence that one worker describes, with the descriptor options."""

    seq: int
    src: SequenceSource
    frames: tuple[int, ...]
    threshold: float
    surface: str
    min_component_voxels: int


def describe_task(task: Task) -> list[Row]:
    """Worker: the descriptors of the frames of one task (top level, so that it pickles)."""
    out = []
    for t, mask, sdf in masks(task.src, task.frames, task.threshold):
        try:
            d = desc.frame_descriptors(mask, sdf, level=task.threshold, surface=task.surface,
                                       min_component_voxels=task.min_component_voxels)
        except ValueError as e:
            raise UserError(f"{task.src.paths[0]}: frame {t}: {e}") from None
        out.append((task.seq, t, d))
    return out


def make_tasks(sources: Sequence[SequenceSource], threshold: float, surface: str, min_voxels: int) -> list[Task]:
    """One task per frame, or per file for a MAT v5 file (read whole)."""
    tasks = []
    for i, s in enumerate(sources):
        chunks = [tuple(range(s.n_frames))] if is_whole_file(s) else [(t,) for t in range(s.n_frames)]
        tasks.extend(Task(i, s, c, threshold, surface, min_voxels) for c in chunks)
    return tasks


def _in_workers(tasks: Sequence[Task], workers: int, bar: tqdm) -> list[Row]:
    """Run ``tasks`` in ``workers`` spawned processes (rows in completion order)."""
    results: list[Row] = []
    ex = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [ex.submit(describe_task, task) for task in tasks]
        for fut in as_completed(futures):
            r = fut.result()
            results.extend(r)
            bar.update(len(r))
    except BrokenProcessPool:
        ex.shutdown(wait=True, cancel_futures=True)
        raise UserError("a descriptor worker process stopped abruptly (out of memory? or, when calling "
                        "this from a script, the call is not under `if __name__ == \"__main__\":`, which "
                        "worker processes need); retry with --workers 1 (workers=1)") from None
    except BaseException:
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)
    return results


def run_tasks(tasks: Sequence[Task], workers: int | None, progress: bool, label: str,
              total_voxels: int | None = None) -> list[Row]:
    """Run the descriptor tasks, in ``workers`` processes (in this one for ``workers <= 1``, or for
    ``workers=None`` and fewer than :data:`IN_PROCESS_VOXELS` voxels), with a progress bar over frames;
    rows sorted by (sequence, frame)."""
    n_frames = sum(len(t.frames) for t in tasks)
    if workers is None:
        workers = 1 if (total_voxels is not None and total_voxels < IN_PROCESS_VOXELS) else default_workers()
    workers = max(1, min(int(workers), len(tasks) or 1))
    results: list[Row] = []
    bar = tqdm(total=n_frames, unit="frame", desc=label, disable=not progress, dynamic_ncols=True)
    try:
        if workers == 1:
            for task in tasks:
                r = describe_task(task)
                results.extend(r)
                bar.update(len(r))
        else:
            results = _in_workers(tasks, workers, bar)
    finally:
        bar.close()
    results.sort(key=lambda r: (r[0], r[1]))
    return results


@dataclass
class DescribedSet:
    """The descriptors of one set of cells.

    Attributes:
        sources: the sequences.
        frames: one dict per frame: ``sequence``, ``source``, ``frame`` and the
            :data:`~autodecoder.evaluation.descriptors.FRAME_DESCRIPTORS`.
        sequences: one dict per sequence: ``sequence``, ``source`` and the
            :data:`~autodecoder.evaluation.descriptors.SEQUENCE_DESCRIPTORS`.
    """

    sources: list[SequenceSource]
    frames: list[dict[str, Any]]
    sequences: list[dict[str, Any]]


def _voxels(src: SequenceSource) -> int:
    """Voxels of all frames of ``src``."""
    return int(np.prod(src.grid)) * src.n_frames


def _source_name(src: SequenceSource) -> str:
    """The file of a sequence, or the folder of its per-frame files."""
    return src.paths[0] if src.kind != "tiff-frames" else str(Path(src.paths[0]).parent)


def describe(paths: Iterable[str | Path] | Sequence[SequenceSource], threshold: float = 0.0, surface: str = "mask",
             min_component_voxels: int = 1, workers: int | None = None, progress: bool = True,
             what: str = "set") -> DescribedSet:
    """Descriptors per frame and per sequence of every sequence found in ``paths`` (files and folders,
    or the sequences of :func:`~autodecoder.io.discovery.collect_sequences`)."""
    check_options(surface, min_component_voxels)
    paths = list(paths)
    sources = paths if paths and all(isinstance(p, SequenceSource) for p in paths) else \
        collect_sequences(paths, what)
    tasks = make_tasks(sources, threshold, surface, min_component_voxels)
    total = sum(_voxels(s) for s in sources) if workers is None else None
    results = run_tasks(tasks, workers, progress, f"descriptors ({what})", total)
    frames = [{"sequence": sources[i].name, "source": _source_name(sources[i]), "frame": t, **d}
              for i, t, d in results]
    sequences = []
    for s in sources:
        rows = [r for r in frames if r["sequence"] == s.name]
        sequences.append({"sequence": s.name, "source": rows[0]["source"] if rows else s.paths[0],
                          **desc.sequence_descriptors(rows)})
    return DescribedSet(sources, frames, sequences)
