"""Held-out scores of ways to draw new cells: each method's draws against the test cells, as a table.

A *method* (:class:`Method`) is a way of producing cells — a prior of ``test.py -t sample``, the
original's ``generate``, the model's reconstructions of the training cells, or the training cells
themselves — given as several *draws*, each a table of per-cell vectors ``(cells, entries)``
(:mod:`autodecoder.evaluation.per_cell`) holding as many cells as the test split. Every draw is
compared with the test cells' vectors (:func:`score_method`):

* ``1-NNA`` (:func:`autodecoder.evaluation.generative.one_nna`; 0.5 = indistinguishable, 1 =
  separable), ``coverage``, ``MMD`` (squared, Gaussian kernel) and the minimum matching distance
  ``MMD-dist`` (standardised units), each as mean ± standard error over the draws;
* Kolmogorov–Smirnov ``D`` and p-value per vector entry, Holm-adjusted across the entries within
  each draw; the table shows per entry the median over draws of ``D`` and of the adjusted p, and a
  method *differs* in an entry when that median adjusted p is below :data:`P_LEVEL`;
* ``copies``: the share of all its generated cells (pooled over draws) whose best Dice with a
  training cell's canonical shape is above the calibrated threshold
  (:func:`autodecoder.evaluation.generative.novelty`), where the method has canonical shapes; and
  the same above a stricter threshold when one is given (``copies (q95)``: the 95th percentile of
  the real cells' nearest-neighbour Dice, which 5 % of the real cells exceed).

:func:`check_done` states, for one kind of cell, whether the default method meets the issue's
bar; :func:`markdown_table`, :func:`write_tables` and :func:`plot_distributions` write the results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from autodecoder.evaluation import generative as gen
from autodecoder.evaluation.per_cell import LABELS
from autodecoder.evaluation.report import md_table, write_csv
from autodecoder.evaluation.statistics import ks_test
from autodecoder.experiment.errors import UserError

__all__ = ["P_LEVEL", "COPY_LIMIT", "NNA_MARGIN", "Method", "Score", "subsets", "score_method", "pairwise_dice",
           "leave_one_out_copies", "Candidate", "nna_standard_error", "choose", "TABLE_COLUMNS", "table_rows", "markdown_table",
           "write_tables", "check_done", "plot_distributions", "plot_cells"]

#: Median Holm-adjusted KS p below which a method differs from the test cells in an entry.
P_LEVEL = 0.01
#: Most copies the default method may make.
COPY_LIMIT = 0.10
#: How far above the reconstructions' 1-NNA the default method may be.
NNA_MARGIN = 0.10


@dataclass
class Method:
    """A way of producing cells: ``draws`` are (cells, entries) tables; ``best_dice`` (all cells of all
    draws, in order) each cell's best Dice with a training cell's canonical shape, None when not
    applicable; ``copies_note`` (``strict_note``) replaces the copies (strict copies) cell of the table when given."""

    name: str
    draws: list[np.ndarray]
    best_dice: np.ndarray | None = None
    copies_note: str = ""
    note: str = ""
    strict_note: str = ""


@dataclass
class Score:
    """The scores of one method against the test cells (see the module docstring)."""

    name: str
    draws: int
    cells: int
    nna: tuple[float, float]
    coverage: tuple[float, float]
    mmd: tuple[float, float]
    matching: tuple[float, float]
    ks_d: np.ndarray
    ks_p: np.ndarray
    differing: list[str]
    copies: float | None = None
    copies_note: str = ""
    note: str = ""
    per_draw_nna: list[float] = field(default_factory=list)
    strict_copies: float | None = None
    strict_note: str = ""


def subsets(table: np.ndarray, size: int, draws: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``draws`` random subsets of ``size`` rows of ``table`` (without replacement within a subset): the
    draws of a fixed set of cells (training cells, reconstructions) larger than the test split."""
    if size > len(table):
        raise UserError(f"subsets of {size} cells from {len(table)}: expected at most {len(table)}")
    return [table[np.sort(rng.choice(len(table), size, replace=False))] for _ in range(draws)]


def score_method(test: np.ndarray, method: Method, names: Sequence[str], threshold: float | None = None,
                 strict_threshold: float | None = None) -> Score:
    """Every draw of ``method`` against the ``test`` vectors (cells, entries); ``names`` the entries; copies
    above ``threshold`` and above ``strict_threshold``, when given."""
    test = np.asarray(test, dtype=np.float64)
    if not method.draws:
        raise UserError(f"{method.name}: no draws")
    nna, cov, mmd, match, ds, ps = [], [], [], [], [], []
    for draw in method.draws:
        x = np.asarray(draw, dtype=np.float64)
        if x.shape[1] != test.shape[1] or x.shape[1] != len(names):
            raise UserError(f"{method.name}: {x.shape[1]} entries per cell, expected {len(names)}")
        nna.append(gen.one_nna(test, x))
        cov.append(gen.coverage(test, x))
        mmd.append(gen.mmd(test, x))
        match.append(gen.minimum_matching_distance(test, x))
        d, p = np.array([ks_test(x[:, j], test[:, j]) for j in range(x.shape[1])]).T
        ds.append(d)
        ps.append(gen.holm(np.where(np.isnan(p), 1.0, p)))
    ks_d, ks_p = np.median(ds, axis=0), np.median(ps, axis=0)
    def share(limit: float | None) -> float | None:
        if method.best_dice is None or limit is None:
            return None
        return gen.novelty(np.asarray(method.best_dice, np.float64).reshape(-1, 1), limit).copies
    return Score(method.name, len(method.draws), int(np.mean([len(d) for d in method.draws])),
                 gen.summarise_over_draws(nna), gen.summarise_over_draws(cov), gen.summarise_over_draws(mmd),
                 gen.summarise_over_draws(match), ks_d, ks_p,
                 [names[j] for j in np.flatnonzero(ks_p < P_LEVEL)], share(threshold), method.copies_note, method.note,
                 nna, share(strict_threshold), method.strict_note)


def pairwise_dice(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean per-frame Dice of every pair of bool sequences: ``a`` (n, T, X, Y, Z) and ``b`` (m, T, X, Y, Z)
    → float64 (n, m) (1 for a pair of frames that are both empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.ndim != 5 or b.ndim != 5 or a.shape[1:] != b.shape[1:]:
        raise UserError(f"pairwise Dice: expected (n, T, X, Y, Z) sequences of one shape, got {a.shape} and {b.shape}")
    out = np.zeros((len(a), len(b)))
    for t in range(a.shape[1]):
        x = a[:, t].reshape(len(a), -1).astype(np.float32)
        y = b[:, t].reshape(len(b), -1).astype(np.float32)
        inter = x @ y.T  # exact: counts below 2**24
        total = x.sum(1)[:, None] + y.sum(1)[None]
        out += np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0)
    return out / a.shape[1]


def leave_one_out_copies(real_pairwise: np.ndarray, threshold: float) -> float:
    """The copy criterion applied to the real cells themselves: the share whose best Dice with another
    real cell (symmetric (n, n) matrix, diagonal ignored) is above ``threshold`` — what a generator
    that drew new cells of the real distribution would score, about one half when ``threshold`` is
    the mean of those best Dice values (:func:`autodecoder.evaluation.generative.calibrate_copy_threshold`)."""
    s = np.array(real_pairwise, dtype=np.float64)
    np.fill_diagonal(s, -np.inf)
    return float(np.mean(s.max(axis=1) > threshold))


@dataclass
class Candidate:
    """A setting tried on the validation cells: its 1-NNA against them and its share of copies."""

    setting: float
    nna: float
    copies: float


def nna_standard_error(cells: int) -> float:
    """The binomial standard error of a 1-NNA at chance over ``2·cells`` decisions, ``√(0.25 / (2·cells))``
    (a lower bound: the decisions are not independent)."""
    return math.sqrt(0.25 / (2 * cells))


def choose(candidates: Sequence[Candidate], preferred: float, margin: float) -> Candidate:
    """The candidate with the lowest validation 1-NNA, except that the ``preferred`` setting (the command's
    default) is kept unless another beats it by more than ``margin`` (one standard error: differences
    within the noise of one draw do not move the setting). NaN scores (validation skipped) keep the
    preferred setting, or the first candidate."""
    if not candidates:
        raise UserError("no candidate settings to choose from")
    default = next((c for c in candidates if c.setting == preferred), candidates[0])
    scored = [c for c in candidates if math.isfinite(c.nna)]
    if not scored:
        return default
    best = min(scored, key=lambda c: (c.nna, candidates.index(c)))
    if math.isfinite(default.nna) and best.nna >= default.nna - margin:
        return default
    return best


def _pm(v: tuple[float, float], digits: int = 3) -> str:
    mean, se = v
    return f"{mean:.{digits}f}" + ("" if not math.isfinite(se) else f" ± {se:.{digits}f}")


#: The columns of :func:`table_rows` (and of the CSV table).
TABLE_COLUMNS = ("method", "draws", "cells", "nna", "nna_se", "coverage", "coverage_se", "mmd", "mmd_se",
                 "matching_distance", "matching_distance_se", "copies", "copies_q95", "differing", "worst_entry",
                 "worst_d", "worst_p", "note")


def _worst(s: Score) -> int:
    return int(np.argmax(s.ks_d))


def _copies(s: Score) -> tuple[float | str | None, float | str | None]:
    """The two copy cells of a method: its share (copies, copies above the stricter threshold) where it
    has canonical shapes, else its note, else None."""
    return (s.copies if s.copies is not None else (s.copies_note or None),
            s.strict_copies if s.strict_copies is not None else (s.strict_note or None))


def table_rows(scores: Sequence[Score], names: Sequence[str]) -> list[dict]:
    """One dict per method (:data:`TABLE_COLUMNS`)."""
    rows = []
    for s in scores:
        w = _worst(s)
        copies, strict = _copies(s)
        rows.append({"method": s.name, "draws": s.draws, "cells": s.cells, "nna": s.nna[0], "nna_se": s.nna[1],
                     "coverage": s.coverage[0], "coverage_se": s.coverage[1], "mmd": s.mmd[0], "mmd_se": s.mmd[1],
                     "matching_distance": s.matching[0], "matching_distance_se": s.matching[1],
                     "copies": copies, "copies_q95": strict,
                     "differing": " ".join(s.differing), "worst_entry": names[w], "worst_d": float(s.ks_d[w]),
                     "worst_p": float(s.ks_p[w]), "note": s.note})
    return rows


def markdown_table(scores: Sequence[Score], names: Sequence[str]) -> str:
    """Methods (rows) × measures (columns) as Markdown."""
    header = ["method", "1-NNA (0.5 best)", "coverage", "MMD", "min. matching distance", "copies", "copies (q95)",
              f"entries differing (median Holm p < {P_LEVEL:g})", "largest KS D (entry, median Holm p)"]
    rows = []
    for s in scores:
        w = _worst(s)
        copies, strict = (f"{100 * c:.0f} %" if isinstance(c, float) else (c or "–") for c in _copies(s))
        rows.append([f"{s.name}{f' ({s.note})' if s.note else ''}", _pm(s.nna), _pm(s.coverage, 2),
                     _pm(s.mmd, 3), _pm(s.matching, 2), copies, strict,
                     f"{len(s.differing)}" + (f": {', '.join(s.differing)}" if s.differing else ""),
                     f"{s.ks_d[w]:.2f} ({LABELS.get(names[w], names[w])}, {s.ks_p[w]:.2g})"])
    return md_table(header, rows)


def write_tables(scores: Sequence[Score], names: Sequence[str], prefix: Path, title: str = "") -> list[Path]:
    """``<prefix>.md`` (the table), ``<prefix>.csv`` (:data:`TABLE_COLUMNS`) and ``<prefix>_ks.csv`` (per
    method and entry: median D and median Holm-adjusted p); returns the paths."""
    from autodecoder.experiment.guards import atomic_write_text
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    md = prefix.with_suffix(".md")
    atomic_write_text(md, (f"{title}\n\n" if title else "") + markdown_table(scores, names) + "\n")
    csv = write_csv(prefix.with_suffix(".csv"), table_rows(scores, names), TABLE_COLUMNS)
    ks_rows = [{"method": s.name, "entry": n, "ks_d": float(s.ks_d[j]), "holm_p": float(s.ks_p[j])}
               for s in scores for j, n in enumerate(names)]
    ks = write_csv(prefix.parent / f"{prefix.name}_ks.csv", ks_rows, ("method", "entry", "ks_d", "holm_p"))
    return [md, csv, ks]


def check_done(scores: Sequence[Score], default: str, reconstruction: str, baselines: Sequence[str]) -> list[str]:
    """The issue's bar for the ``default`` method, one line per condition, each starting with ``PASS`` or
    ``FAIL``: 1-NNA within :data:`NNA_MARGIN` of the ``reconstruction`` method's, at most
    :data:`COPY_LIMIT` copies, a lower 1-NNA than each of ``baselines``, and no entry differing from
    the test cells where the reconstructions do not differ."""
    by = {s.name: s for s in scores}
    d, r = by[default], by[reconstruction]
    lines = []
    ok = d.nna[0] <= r.nna[0] + NNA_MARGIN
    lines.append(f"{'PASS' if ok else 'FAIL'} 1-NNA {_pm(d.nna)} within {NNA_MARGIN:g} of the reconstructions' "
                 f"{_pm(r.nna)} (gap {d.nna[0] - r.nna[0]:+.3f})")
    if d.copies is None:
        lines.append("FAIL copies: not measured")
    else:
        lines.append(f"{'PASS' if d.copies <= COPY_LIMIT else 'FAIL'} copies {100 * d.copies:.0f} % "
                     f"(at most {100 * COPY_LIMIT:.0f} %)")
    for b in baselines:
        if b in by and b != default:
            ok = d.nna[0] < by[b].nna[0]
            lines.append(f"{'PASS' if ok else 'FAIL'} 1-NNA below {b}'s {_pm(by[b].nna)}")
    extra = [n for n in d.differing if n not in r.differing]
    lines.append(f"{'PASS' if not extra else 'FAIL'} entries differing from the test cells where the "
                 f"reconstructions do not: {', '.join(extra) if extra else 'none'}")
    return lines


def plot_distributions(test: np.ndarray, methods: Sequence[Method], names: Sequence[str], entries: Sequence[str],
                       path: Path, title: str = "") -> Path:
    """Box plots of the chosen ``entries``: the test cells, then every method's cells (draws pooled)."""
    from autodecoder.io.pictures import plt, save_figure
    cols = 4
    rows = int(math.ceil(len(entries) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), dpi=90, squeeze=False)
    labels = ["test"] + [m.name for m in methods]
    for ax, entry in zip(axes.ravel(), entries):
        j = list(names).index(entry)
        data = [np.asarray(test)[:, j]] + [np.concatenate([np.asarray(d)[:, j] for d in m.draws]) for m in methods]
        bp = ax.boxplot(data, widths=0.6, patch_artist=True, showfliers=False)
        for k, patch in enumerate(bp["boxes"]):
            patch.set_facecolor("#4C72B0" if k == 0 else "#DD8452")
            patch.set_alpha(0.45)
        for med in bp["medians"]:
            med.set_color("k")
        jitter = np.random.default_rng(0)
        for k, v in enumerate(data):
            ax.scatter(k + 1 + jitter.uniform(-0.18, 0.18, len(v)), v, s=4, color="k", alpha=0.35, zorder=3)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=35, ha="right", fontsize=7)
        ax.set_title(LABELS.get(entry, entry), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes.ravel()[len(entries):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path)


def plot_cells(groups: dict[str, Sequence[np.ndarray]], frames: Sequence[int], path: Path, title: str = "") -> Path:
    """One panel per group (e.g. test cells, drawn cells), one above the other: every cell a column, the
    chosen ``frames`` its rows, each the maximum projection along the last axis of a bool ``(T, X, Y, Z)``
    sequence."""
    from autodecoder.io.pictures import mip, plt, save_figure, tile
    cells = max(len(c) for c in groups.values())
    fig, axes = plt.subplots(len(groups), 1, figsize=(1.3 * cells + 0.6, (1.3 * len(frames) + 0.5) * len(groups)),
                             dpi=100, squeeze=False)
    for ax, (name, group) in zip(axes[:, 0], groups.items()):
        ax.imshow(tile([mip(np.asarray(c)[t]) for t in frames for c in group], columns=len(group)),
                  cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel("frames " + ", ".join(str(t) for t in frames), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path)
