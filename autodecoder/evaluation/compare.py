"""``evaluate.py compare``: how close are generated cells to real ones?

Two sets of cells (``.h5``/``.mat`` SDF sequences, mask TIFFs, any mix, found by
:func:`autodecoder.io.discovery.collect_sequences`): the shape descriptors of
:mod:`autodecoder.evaluation.descriptors` for every frame (in worker processes, with a progress
bar: :mod:`autodecoder.evaluation.pool`), per-sequence growth and division, two-sample
Kolmogorov–Smirnov tests per descriptor (:mod:`autodecoder.evaluation.statistics`),
quantile–quantile plots and box plots (:mod:`autodecoder.evaluation.figures`), CSV tables and
``report.md``, a report a biologist can read (:mod:`autodecoder.evaluation.report`).
Masks: ``sdf <= threshold`` for SDF files, ``value > 0`` for TIFFs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from autodecoder.decoding.provenance import ORIGIN_KEYS, output_provenance
from autodecoder.evaluation import descriptors as desc
from autodecoder.evaluation.figures import plot_comparison
from autodecoder.evaluation.pool import DescribedSet, check_options, describe
from autodecoder.evaluation.report import format_d, write_csv, write_report
from autodecoder.evaluation.statistics import GENERATED, KS_COLUMNS, REAL, format_p, ks_table
from autodecoder.experiment.guards import ensure_writable_dir, refuse_mixed
from autodecoder.io.discovery import SequenceSource, collect_sequences

__all__ = ["FRAME_COLUMNS", "SEQUENCE_COLUMNS", "KS_COLUMNS", "SEQUENCE_TESTED", "Comparison", "grid_warning",
           "compare"]

FRAME_COLUMNS = ("sequence", "source", "frame") + desc.FRAME_DESCRIPTORS
SEQUENCE_COLUMNS = ("sequence", "source") + desc.SEQUENCE_DESCRIPTORS
#: Per-sequence descriptors that get a KS test.
SEQUENCE_TESTED = ("growth_rate", "relative_growth_rate")


@dataclass
class Comparison:
    """What :func:`compare` produced.

    Attributes:
        report: ``report.md``.
        real, generated: the descriptors of both sets.
        ks: the KS rows (per-frame descriptors, then per-sequence ones).
        files: every file written.
    """

    report: Path
    real: DescribedSet
    generated: DescribedSet
    ks: list[dict]
    files: list[Path] = field(default_factory=list)


def grid_warning(real: Sequence[SequenceSource], generated: Sequence[SequenceSource],
                 names: tuple[str, str] = (REAL, GENERATED)) -> str | None:
    """A warning when the two sets are on grids of different sizes (descriptors in voxels then differ in scale)."""
    def sizes(src):
        return {int(np.prod(s.grid)) for s in src}

    if sizes(real) == sizes(generated):
        return None

    def grids(src):
        return ", ".join(sorted({"×".join(map(str, s.grid)) for s in src}))
    return (f"the sets are on grids of different sizes ({names[0]}: {grids(real)}; {names[1]}: "
            f"{grids(generated)}): volume, surface area, axis lengths, surface-to-volume ratio and growth "
            "rate are in voxels and not comparable; compare the scale-free descriptors (sphericity, "
            "elongation, flatness, solidity, components, Euler characteristic, relative growth rate), or "
            "decode on the same grid")


def _as_paths(p: str | Path | Iterable[str | Path]) -> list[Path]:
    """One path or many, as a list of paths."""
    if isinstance(p, (str, Path)):
        return [Path(p)]
    return [Path(x) for x in p]


def _write_tables(out: Path, real: DescribedSet, generated: DescribedSet, ks: Sequence[dict]) -> list[Path]:
    """The five CSV files of a comparison."""
    return [write_csv(out / "descriptors_real.csv", real.frames, FRAME_COLUMNS),
            write_csv(out / "descriptors_generated.csv", generated.frames, FRAME_COLUMNS),
            write_csv(out / "sequences_real.csv", real.sequences, SEQUENCE_COLUMNS),
            write_csv(out / "sequences_generated.csv", generated.sequences, SEQUENCE_COLUMNS),
            write_csv(out / "ks_tests.csv", ks, KS_COLUMNS)]


def _log_summary(real: DescribedSet, generated: DescribedSet, ks_f: Sequence[dict], ks_s: Sequence[dict],
                 names: tuple[str, str], log: Callable[[str], None]) -> None:
    """One line per KS test on ``log``."""
    log(f"compare: {len(real.frames)} {names[0]} frames ({len(real.sources)} sequences) vs "
        f"{len(generated.frames)} {names[1]} frames ({len(generated.sources)} sequences)")
    width = max(len(desc.LABELS[r["descriptor"]][0]) for r in ks_f) + 2
    for r in [*ks_f, *ks_s]:
        log(f"  {desc.LABELS[r['descriptor']][0]:<{width}} D {format_d(r['ks_statistic']):>6}  "
            f"p {format_p(r['p_value']):>8}  {r['verdict']}")


def compare(real_paths: str | Path | Iterable[str | Path], generated_paths: str | Path | Iterable[str | Path],
            out_dir: str | Path = "evaluation", threshold: float = 0.0, workers: int | None = None,
            surface: str = "mask", min_component_voxels: int = 1, names: tuple[str, str] = (REAL, GENERATED),
            progress: bool = True, log: Callable[[str], None] = print) -> Comparison:
    """Compare the shapes of two sets of cells and write the CSV files, the figures and ``report.md``.

    Args:
        real_paths, generated_paths: a file or folder, or a list of them, per set.
        out_dir: output folder (created).
        threshold: cells are ``sdf <= threshold`` in SDF files (TIFF masks: ``value > 0``).
        workers: worker processes (default: up to 4, in this process for small inputs; 1 = in this process).
        surface: ``"mask"`` or ``"sdf"`` (see :mod:`autodecoder.evaluation.descriptors`).
        min_component_voxels: smaller components are not counted.
        names: how the two sets are called in the report and figures.
        progress: show progress bars.
        log: where messages go.
    """
    real_paths, generated_paths = _as_paths(real_paths), _as_paths(generated_paths)
    out = Path(out_dir)
    check_options(surface, min_component_voxels)
    real_src = collect_sequences(real_paths, names[0])  # both sides checked before the long part
    generated_src = collect_sequences(generated_paths, names[1])
    for src in (real_src, generated_src):  # one model's outputs at a time, never pooled
        refuse_mixed([Path(s.paths[0]) for s in src if s.kind == "sdf"], output_provenance, ORIGIN_KEYS)
    ensure_writable_dir(out, "evaluation output")
    warning = grid_warning(real_src, generated_src, names)
    if warning:
        log(f"warning: {warning}")
    kw = dict(threshold=threshold, surface=surface, min_component_voxels=min_component_voxels,
              workers=workers, progress=progress)
    real = describe(real_src, what=names[0], **kw)
    generated = describe(generated_src, what=names[1], **kw)
    ks_f = ks_table(real.frames, generated.frames, desc.FRAME_DESCRIPTORS, "frame")
    ks_s = (ks_table(real.sequences, generated.sequences, SEQUENCE_TESTED, "sequence")
            if len(real.sequences) >= 2 and len(generated.sequences) >= 2 else [])
    files = _write_tables(out, real, generated, ks_f + ks_s)
    files += plot_comparison(real.frames, generated.frames, ks_f, out, names)
    report = write_report(out, real, generated, ks_f, ks_s, names, real_paths, generated_paths, threshold,
                          surface, min_component_voxels, warning)
    files.append(report)
    _log_summary(real, generated, ks_f, ks_s, names, log)
    log(f"report: {report}")
    return Comparison(report, real, generated, ks_f + ks_s, files)
