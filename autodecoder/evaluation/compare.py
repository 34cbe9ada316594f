"""How close are learned and generated cells to real ones? (``python evaluate.py``)

Two modes:

``reconstruction`` (:func:`reconstruction`)
    Decode every learned sequence of an experiment with the shared grid
    decoder (:func:`autodecoder.grid.decode_frames`) on the grid and frame
    count of its own training file, and compare frame by frame with the
    training mask: Dice, Jaccard, mean and 95th-percentile symmetric surface
    distance (voxels). A model decoded at another resolution (``dims``) is
    resampled to the training grid by linear interpolation of the SDF
    (``scipy.ndimage.zoom``, order 1) and the report says so. Writes
    ``reconstruction.csv``, ``reconstruction.md`` and ``reconstruction_dice.png``.

``compare`` (:func:`compare`)
    Two sets of cells (``.h5``/``.mat`` SDF sequences, mask TIFFs, any mix):
    the shape descriptors of :mod:`autodecoder.descriptors` for every frame
    (in worker processes, with a progress bar), per-sequence growth and
    division, two-sample Kolmogorov–Smirnov tests per descriptor,
    quantile–quantile plots and box plots, and ``report.md``, a report a
    biologist can read.

Inputs of ``compare``, per side: files and folders. A folder contributes its
SDF files (one sequence each), its 4-D TIFF stacks ``(T, Z, Y, X)`` (one
sequence each) and its 3-D TIFFs (together one sequence, one file per frame,
in natural order: ``mask_t2`` before ``mask_t10``); sub-folders are searched
the same way (two levels deep). Masks: ``sdf <= threshold`` for SDF files,
``value > 0`` for TIFFs.
"""

from __future__ import annotations

import csv
import math
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from tqdm import tqdm

from autodecoder.evaluation import descriptors as desc
from autodecoder.experiment.errors import UserError
from autodecoder.io.sequences import SequenceFile
from autodecoder.evaluation.metrics import dice, jaccard, surface_distances
from autodecoder.experiment.workspace import atomic_path, atomic_write_text

SDF_SUFFIXES = (".h5", ".hdf5", ".mat")
TIFF_SUFFIXES = (".tif", ".tiff")
#: Below this many voxels in all (about 64 frames of 64³) ``workers=None`` computes in this process.
IN_PROCESS_VOXELS = 1 << 24
#: Folder depth searched below each folder given to ``compare``.
SEARCH_DEPTH = 2
P_STRONG, P_WEAK = 0.01, 0.05
REAL, GENERATED = "real", "generated"


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


# ==========================================================================
# inputs of ``compare``

@dataclass(frozen=True)
class SequenceSource:
    """One cell's time-lapse on disk.

    Attributes:
        name: unique name in its set (file name, or folder name for per-frame TIFFs).
        kind: ``"sdf"`` (an ``.h5``/``.mat`` sequence), ``"tiff-stack"`` (one
            4-D TIFF) or ``"tiff-frames"`` (one 3-D TIFF per frame).
        paths: the file, or the frame files in order.
        n_frames: number of frames.
        grid: the shape of one frame as stored (``(X, Y, Z)`` for SDF files,
            ``(Z, Y, X)`` for TIFFs; the descriptors do not depend on the order).
    """

    name: str
    kind: str
    paths: tuple[str, ...]
    n_frames: int
    grid: tuple[int, ...] = ()


def _natural_key(p: Path) -> list:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def _tiff_shape(path: Path) -> tuple[int, ...]:
    """Shape of a TIFF's first series without its length-1 axes."""
    import tifffile
    try:
        with tifffile.TiffFile(path) as tf:
            shape = tf.series[0].shape
    except Exception as e:  # tifffile raises several types for broken files
        raise UserError(f"{path}: cannot read as a TIFF file ({e})") from None
    squeezed = tuple(int(s) for s in shape if s != 1)
    if len(squeezed) not in (3, 4):
        raise UserError(f"{path}: expected a 3-D mask (Z, Y, X) or a 4-D stack (T, Z, Y, X), got shape {tuple(shape)}")
    return squeezed


def _sdf_source(path: Path, name: str) -> SequenceSource:
    with SequenceFile(path) as f:
        return SequenceSource(name, "sdf", (str(path),), f.n_frames, tuple(f.grid_shape))


def _collect_dir(folder: Path, root: Path, depth: int) -> list[SequenceSource]:
    entries = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=_natural_key)
    out: list[SequenceSource] = []
    frames: list[tuple[Path, tuple[int, ...]]] = []
    for p in entries:
        if p.is_file() and p.suffix.lower() in SDF_SUFFIXES:
            out.append(_sdf_source(p, str(p.relative_to(root))))
        elif p.is_file() and p.suffix.lower() in TIFF_SUFFIXES:
            shape = _tiff_shape(p)
            if len(shape) == 4:
                out.append(SequenceSource(str(p.relative_to(root)), "tiff-stack", (str(p),), shape[0], shape[1:]))
            else:
                frames.append((p, shape))
    if frames:
        name = str(folder.relative_to(root)) if folder != root else folder.name
        grids = {g for _, g in frames}
        if len(grids) > 1:
            raise UserError(f"{folder}: its 3-D TIFFs (one per frame) have different shapes: "
                            + ", ".join("×".join(map(str, g)) for g in sorted(grids)))
        out.append(SequenceSource(name + "/", "tiff-frames", tuple(str(p) for p, _ in frames), len(frames),
                                  frames[0][1]))
    if depth > 0:
        for p in entries:
            if p.is_dir():
                out.extend(_collect_dir(p, root, depth - 1))
    return out


def collect_sequences(paths: Iterable[str | Path], what: str = "set") -> list[SequenceSource]:
    """The sequences found in ``paths`` (files and folders, see the module docstring).

    Raises :class:`UserError` for a missing path, an unreadable file, or when
    nothing at all is found.
    """
    out: list[SequenceSource] = []
    paths = [Path(p) for p in paths]
    if not paths:
        raise UserError(f"no {what} files or folders given")
    for p in paths:
        if not p.exists():
            raise UserError(f"{p}: {what} file or folder not found")
        if p.is_dir():
            found = _collect_dir(p, p, SEARCH_DEPTH)
            if not found:
                raise UserError(f"{p}: no shapes found in the {what} folder (expected .h5/.mat SDF sequences "
                                "or .tif/.tiff masks)")
            out.extend(found)
        elif p.suffix.lower() in SDF_SUFFIXES:
            out.append(_sdf_source(p, p.name))
        elif p.suffix.lower() in TIFF_SUFFIXES:
            shape = _tiff_shape(p)
            kind = "tiff-stack" if len(shape) == 4 else "tiff-frames"
            out.append(SequenceSource(p.name, kind, (str(p),), shape[0] if len(shape) == 4 else 1, shape[-3:]))
        else:
            raise UserError(f"{p}: not an SDF sequence (.h5, .mat) or a mask TIFF (.tif, .tiff)")
    # unique names
    seen: dict[str, int] = {}
    unique = []
    for s in out:
        k = seen.get(s.name, 0)
        seen[s.name] = k + 1
        unique.append(s if k == 0 else SequenceSource(f"{s.name}#{k + 1}", s.kind, s.paths, s.n_frames, s.grid))
    return unique


def _read_tiff_stack_frame(path: str, t: int) -> np.ndarray:
    import tifffile
    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        shape = tuple(int(s) for s in series.shape if s != 1)
        n_t, n_z = shape[0], shape[1]
        if len(tf.pages) == n_t * n_z:
            arr = tf.asarray(key=range(t * n_z, (t + 1) * n_z))
        else:
            arr = series.asarray().reshape(shape)[t]
    return np.asarray(arr).reshape(shape[1:])


def read_frames(src: SequenceSource, frames: Sequence[int], threshold: float = 0.0
                ) -> Iterable[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield ``(frame index, mask, sdf or None)`` for the given frames of ``src``."""
    if src.kind == "sdf":
        with SequenceFile(src.paths[0]) as f:
            for t in frames:
                sdf = f.frame(t)
                yield t, sdf <= threshold, sdf
    elif src.kind == "tiff-stack":
        for t in frames:
            yield t, _read_tiff_stack_frame(src.paths[0], t) > 0, None
    else:
        import tifffile
        for t in frames:
            try:
                arr = np.asarray(tifffile.imread(src.paths[t]))
            except Exception as e:
                raise UserError(f"{src.paths[t]}: cannot read as a TIFF file ({e})") from None
            arr = arr.reshape(tuple(s for s in arr.shape if s != 1))
            if arr.ndim != 3:
                raise UserError(f"{src.paths[t]}: expected a 3-D mask (Z, Y, X), got shape {arr.shape}")
            yield t, arr > 0, None


# ==========================================================================
# descriptors of many frames, in worker processes

@dataclass(frozen=True)
class _Task:
    seq: int
    src: SequenceSource
    frames: tuple[int, ...]
    threshold: float
    surface: str
    min_component_voxels: int


def _describe_task(task: _Task) -> list[tuple[int, int, dict[str, float]]]:
    """Worker: the descriptors of the frames of one task (top level, so that it pickles)."""
    out = []
    for t, mask, sdf in read_frames(task.src, task.frames, task.threshold):
        try:
            d = desc.frame_descriptors(mask, sdf, level=task.threshold, surface=task.surface,
                                       min_component_voxels=task.min_component_voxels)
        except ValueError as e:
            raise UserError(f"{task.src.paths[0]}: frame {t}: {e}") from None
        out.append((task.seq, t, d))
    return out


def _tasks(sources: Sequence[SequenceSource], threshold: float, surface: str, min_voxels: int) -> list[_Task]:
    tasks = []
    for i, s in enumerate(sources):
        whole_file = s.kind == "sdf" and Path(s.paths[0]).suffix.lower() == ".mat" \
            and not _is_hdf5(s.paths[0])  # a MAT v5 file is read whole: one task
        chunks = [tuple(range(s.n_frames))] if whole_file else [(t,) for t in range(s.n_frames)]
        tasks.extend(_Task(i, s, c, threshold, surface, min_voxels) for c in chunks)
    return tasks


def _is_hdf5(path: str) -> bool:
    import h5py
    return bool(h5py.is_hdf5(path))


def _voxels(src: SequenceSource) -> int:
    return int(np.prod(src.grid)) * src.n_frames


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


def run_tasks(tasks: Sequence[_Task], workers: int | None, progress: bool, label: str,
              total_voxels: int | None = None) -> list[tuple[int, int, dict[str, float]]]:
    """Run the descriptor tasks, in ``workers`` processes (in this one for ``workers <= 1``, or for
    ``workers=None`` and fewer than :data:`IN_PROCESS_VOXELS` voxels), with a progress bar over frames."""
    n_frames = sum(len(t.frames) for t in tasks)
    if workers is None:
        workers = 1 if (total_voxels is not None and total_voxels < IN_PROCESS_VOXELS) else default_workers()
    workers = max(1, min(int(workers), len(tasks) or 1))
    results: list[tuple[int, int, dict[str, float]]] = []
    bar = tqdm(total=n_frames, unit="frame", desc=label, disable=not progress, dynamic_ncols=True)
    try:
        if workers == 1:
            for task in tasks:
                r = _describe_task(task)
                results.extend(r)
                bar.update(len(r))
        else:
            ex = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
            try:
                futures = [ex.submit(_describe_task, task) for task in tasks]
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
            :data:`~autodecoder.descriptors.FRAME_DESCRIPTORS`.
        sequences: one dict per sequence: ``sequence``, ``source`` and the
            :data:`~autodecoder.descriptors.SEQUENCE_DESCRIPTORS`.
    """

    sources: list[SequenceSource]
    frames: list[dict[str, Any]]
    sequences: list[dict[str, Any]]


def _check_options(surface: str, min_component_voxels: int) -> None:
    if surface not in desc.SURFACES:
        raise UserError(f"--surface {surface}: expected one of {', '.join(desc.SURFACES)}")
    if min_component_voxels < 1:
        raise UserError(f"--min-component-voxels {min_component_voxels}: expected an integer >= 1")


def describe(paths: Iterable[str | Path] | Sequence[SequenceSource], threshold: float = 0.0, surface: str = "mask",
             min_component_voxels: int = 1, workers: int | None = None, progress: bool = True,
             what: str = "set") -> DescribedSet:
    """Descriptors per frame and per sequence of every sequence found in ``paths`` (files and folders,
    or the sequences of :func:`collect_sequences`)."""
    _check_options(surface, min_component_voxels)
    paths = list(paths)
    sources = paths if paths and all(isinstance(p, SequenceSource) for p in paths) else \
        collect_sequences(paths, what)
    tasks = _tasks(sources, threshold, surface, min_component_voxels)
    total = sum(_voxels(s) for s in sources) if workers is None else None
    results = run_tasks(tasks, workers, progress, f"descriptors ({what})", total)
    frames = [{"sequence": sources[i].name, "source": sources[i].paths[0] if sources[i].kind != "tiff-frames"
               else str(Path(sources[i].paths[0]).parent), "frame": t, **d} for i, t, d in results]
    sequences = []
    for i, s in enumerate(sources):
        rows = [r for r in frames if r["sequence"] == s.name]
        sequences.append({"sequence": s.name, "source": rows[0]["source"] if rows else s.paths[0],
                          **desc.sequence_descriptors(rows)})
    return DescribedSet(sources, frames, sequences)


# ==========================================================================
# statistics

def _finite(values: Iterable[Any]) -> np.ndarray:
    a = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    return a[np.isfinite(a)]


def verdict(p: float) -> str:
    """A KS p-value in words."""
    if not np.isfinite(p):
        return "not enough data"
    if p < P_STRONG:
        return "distributions differ (p < 0.01)"
    if p < P_WEAK:
        return "weak evidence of a difference (p < 0.05)"
    return "no evidence of a difference"


def ks_test(a: Iterable[Any], b: Iterable[Any]) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov statistic D and p-value (``scipy.stats.ks_2samp``, two-sided) of
    the finite values of ``a`` and ``b``; NaN, NaN when a side has none."""
    from scipy.stats import ks_2samp
    x, y = _finite(a), _finite(b)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan
    res = ks_2samp(x, y)
    return float(res.statistic), float(res.pvalue)


def _quartiles(a: np.ndarray) -> tuple[float, float, float]:
    if len(a) == 0:
        return math.nan, math.nan, math.nan
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return float(med), float(q1), float(q3)


def ks_table(real: Sequence[dict], generated: Sequence[dict], names: Sequence[str], level: str) -> list[dict]:
    """One row per descriptor: sizes, median and quartiles of both sides, KS D, p-value and verdict."""
    rows = []
    for name in names:
        a, b = _finite(r[name] for r in real), _finite(r[name] for r in generated)
        d, p = ks_test(a, b)
        ra, rb = _quartiles(a), _quartiles(b)
        rows.append({"descriptor": name, "level": level, "n_real": len(a), "n_generated": len(b),
                     "real_median": ra[0], "real_q1": ra[1], "real_q3": ra[2],
                     "generated_median": rb[0], "generated_q1": rb[1], "generated_q3": rb[2],
                     "ks_statistic": d, "p_value": p, "verdict": verdict(p)})
    return rows


# ==========================================================================
# files: CSV, figures

def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v.is_integer() and abs(v) < 2**53:
            return int(v)
        return f"{v:.6g}"
    return v


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> Path:
    """Write ``rows`` (dicts) with ``columns`` as a CSV file (atomically)."""
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            for r in rows:
                w.writerow([_cell(r.get(c)) for c in columns])
    return Path(path)


def _plt():
    from autodecoder.io.pictures import plt  # matplotlib with the file-only backend
    return plt


def _savefig(fig, path: Path) -> None:
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    _plt().close(fig)


COLOURS = ("#4C72B0", "#DD8452")


def _qq(ax, a: np.ndarray, b: np.ndarray, name: str, names: tuple[str, str], p: float) -> None:
    label = desc.LABELS[name][0]
    if len(a) and len(b):
        k = min(len(a), len(b), 200)
        probs = (np.arange(k) + 0.5) / k
        # integer descriptors (counts) get quantiles that are values of the data, not interpolations
        method = "inverted_cdf" if np.all(np.mod(a, 1) == 0) and np.all(np.mod(b, 1) == 0) else "linear"
        qa, qb = np.quantile(a, probs, method=method), np.quantile(b, probs, method=method)
        lo, hi = float(min(qa.min(), qb.min())), float(max(qa.max(), qb.max()))
        pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 0.5)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", lw=1, ls="--", zorder=1)
        ax.scatter(qa, qb, s=14, color=COLOURS[1], edgecolor="k", linewidth=0.3, zorder=2)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"{names[0]} quantiles", fontsize=8)
    ax.set_ylabel(f"{names[1]} quantiles", fontsize=8)
    ax.set_title(f"{label}\nKS p = {_p(p)}", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)


def _box(ax, a: np.ndarray, b: np.ndarray, name: str, names: tuple[str, str], p: float) -> None:
    label, unit = desc.LABELS[name]
    data = [a if len(a) else np.array([np.nan]), b if len(b) else np.array([np.nan])]
    bp = ax.boxplot(data, tick_labels=list(names), widths=0.55, patch_artist=True, showfliers=False)
    for patch, c in zip(bp["boxes"], COLOURS):
        patch.set_facecolor(c)
        patch.set_alpha(0.45)
    for med in bp["medians"]:
        med.set_color("k")
    rng = np.random.default_rng(0)
    for i, vals in enumerate((a, b)):
        if len(vals):
            ax.scatter(i + 1 + rng.uniform(-0.15, 0.15, len(vals)), vals, s=6, color=COLOURS[i],
                       alpha=0.6, linewidth=0, zorder=3)
    ax.set_ylabel(unit, fontsize=8)
    ax.set_title(f"{label}\nKS p = {_p(p)}", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(True, axis="y", alpha=0.3)


def plot_comparison(real: Sequence[dict], generated: Sequence[dict], ks: Sequence[dict], out: Path,
                    names: tuple[str, str] = (REAL, GENERATED)) -> list[Path]:
    """QQ plots and box plots per descriptor and in one grid figure each; returns the files written."""
    plt = _plt()
    p_of = {r["descriptor"]: r["p_value"] for r in ks}
    written = []
    descriptors = [r["descriptor"] for r in ks]
    series = {n: (_finite(r[n] for r in real), _finite(r[n] for r in generated)) for n in descriptors}
    for kind, draw in (("qq", _qq), ("box", _box)):
        for n in descriptors:
            fig, ax = plt.subplots(figsize=(3.6, 3.4), dpi=110)
            draw(ax, *series[n], n, names, p_of[n])
            fig.subplots_adjust(left=0.21, right=0.96, bottom=0.14, top=0.85)  # fixed: tight_layout is slow
            path = out / f"{kind}_{n}.png"
            _savefig(fig, path)
            written.append(path)
        cols = 4
        rows = int(math.ceil(len(descriptors) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), dpi=100, squeeze=False)
        for ax, n in zip(axes.flat, descriptors):
            draw(ax, *series[n], n, names, p_of[n])
        for ax in list(axes.flat)[len(descriptors):]:
            ax.set_visible(False)
        title = ("Quantile–quantile plots" if kind == "qq" else "Box plots") + f": {names[0]} vs {names[1]}"
        fig.suptitle(title, fontsize=11)
        fig.tight_layout()
        path = out / f"{kind}_all.png"
        _savefig(fig, path)
        written.append(path)
    return written


# ==========================================================================
# text

def _num(x: Any) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    ax = abs(float(x))
    if float(x).is_integer() and ax < 1e15:
        return str(int(x))
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 0.01 or ax == 0:
        return f"{x:.3f}"
    return f"{x:.3g}"


def _d(x: Any) -> str:
    return f"{x:.3f}" if x is not None and np.isfinite(x) else "–"


def _p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    if p >= 0.001:
        return f"{p:.3f}"
    return f"{p:.1e}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _ks_md(ks: Sequence[dict], names: tuple[str, str]) -> str:
    rows = []
    for r in ks:
        label, unit = desc.LABELS[r["descriptor"]]
        rows.append([label, unit,
                     f"{_num(r['real_median'])} [{_num(r['real_q1'])}–{_num(r['real_q3'])}]",
                     f"{_num(r['generated_median'])} [{_num(r['generated_q1'])}–{_num(r['generated_q3'])}]",
                     _d(r["ks_statistic"]), _p(r["p_value"]), r["verdict"]])
    return _md_table(["descriptor", "unit", f"{names[0]} median [IQR]", f"{names[1]} median [IQR]", "KS D", "p-value",
                      "verdict"], rows)


def _division_text(seqs: Sequence[dict], name: str) -> str:
    div = [(s["sequence"], s["division_frame"]) for s in seqs if s["division_frame"] is not None]
    if not div:
        return f"{name}: no division in any of the {len(seqs)} sequences"
    where = ", ".join(f"{n} at frame {f}" for n, f in div)
    return f"{name}: {len(div)} of {len(seqs)} sequences divide ({where})"


READING_GUIDE = """\
Each row of the table compares one shape descriptor between all frames of the
{r} cells and all frames of the {g} cells. *Median [IQR]* summarises each
distribution: the middle value and the range of the middle half of the values.
The Kolmogorov–Smirnov statistic *D* is the largest gap between the two
cumulative distributions (0 = identical, 1 = no overlap at all). The *p-value*
is the chance of a gap at least this large if both sets came from the same
distribution: below 0.01 the {g} cells differ from the {r} ones in that
descriptor; a large p-value only means that no difference was detected, which
with few cells is weak evidence of similarity. Frames of one cell are not
independent, so with long sequences the p-values are too small (optimistic
about finding differences): read *D* and the plots alongside them. In a
quantile–quantile plot each dot pairs the same quantile of both sets (the
median with the median, …): dots on the dashed diagonal mean equal
distributions, dots above it mean larger {g} values, a slope different from the
diagonal a different spread. Box plots show the median (line), the middle half
(box) and the range without outliers (whiskers), with every frame as a dot.
For synthetic training data of a segmentation network, differences in size
(volume, axis lengths) and shape (sphericity, solidity, elongation) matter most;
the number of components tells whether cells divide (or fall apart) as often.
"""


def write_report(out: Path, real: DescribedSet, generated: DescribedSet, ks_frames: Sequence[dict],
                 ks_sequences: Sequence[dict], names: tuple[str, str], real_paths: Sequence[Path],
                 generated_paths: Sequence[Path], threshold: float, surface: str,
                 min_component_voxels: int, warning: str | None = None) -> Path:
    """Write ``report.md`` in ``out`` (the figures and CSV files are expected next to it)."""
    r, g = names

    def summary(s: DescribedSet, paths: Sequence[Path]) -> str:
        empty = sum(1 for f in s.frames if f["volume"] == 0)
        extra = f", {empty} empty frames (excluded from the shape descriptors)" if empty else ""
        return (f"{len(s.sources)} sequences, {len(s.frames)} frames{extra} — "
                + ", ".join(f"`{p}`" for p in paths))

    surf = ("the mask smoothed with a Gaussian of σ = "
            f"{desc.SMOOTHING_SIGMA} voxel, marching cubes at 0.5 (identical steps for both sets)"
            if surface == "mask" else
            f"marching cubes on the SDF at level {threshold:g} (masks from TIFFs: smoothed mask)")
    parts = [
        f"# Shape comparison: {r} vs {g} cells",
        "",
        f"* **{r}**: {summary(real, real_paths)}",
        f"* **{g}**: {summary(generated, generated_paths)}",
        f"* Written {time.strftime('%Y-%m-%d %H:%M')}; cells are `sdf <= {threshold:g}` in SDF files and "
        "`value > 0` in mask TIFFs; all measures in voxels.",
        *([f"* **Warning**: {warning}."] if warning else []),
        "",
        "## How to read this report",
        "",
        READING_GUIDE.format(r=r, g=g),
        "## Shape descriptors per frame",
        "",
        _ks_md(ks_frames, names),
        "",
        "## Per sequence: growth and division",
        "",
        _ks_md(ks_sequences, names) if ks_sequences else "(too few sequences for a test)",
        "",
        f"* {_division_text(real.sequences, r)}.",
        f"* {_division_text(generated.sequences, g)}.",
        "",
        "A division is the first frame with more connected components than the first frame.",
        "",
        "## Quantile–quantile plots",
        "",
        f"![Quantile–quantile plots of every descriptor, {r} (x) against {g} (y)](qq_all.png)",
        "",
        "## Box plots",
        "",
        f"![Box plots of every descriptor, {r} and {g} side by side](box_all.png)",
        "",
        "One figure per descriptor: `qq_<descriptor>.png`, `box_<descriptor>.png`.",
        "",
        "## Files and methods",
        "",
        "* `descriptors_real.csv`, `descriptors_generated.csv`: every descriptor of every frame; "
        "`sequences_real.csv`, `sequences_generated.csv`: growth rates and division frames; "
        "`ks_tests.csv`: the tables above.",
        "* Volume: number of voxels inside. Surface area: marching-cubes mesh of " + surf + ". "
        "Sphericity: π^(1/3)·(6·volume)^(2/3) / area (1 for a ball). Axis lengths: full axes of the "
        "ellipsoid with the same second moments as the voxels; elongation = 1 − middle/major, "
        "flatness = 1 − minor/middle. Solidity: mesh volume / convex-hull volume. Components: "
        f"26-connected (at least {min_component_voxels} voxel{'s' if min_component_voxels > 1 else ''}). "
        "Euler characteristic: components − tunnels + cavities (1 for a ball, 0 for a ring). "
        "Growth rate: slope of volume vs frame (relative: over the first frame's volume).",
        "* Kolmogorov–Smirnov: `scipy.stats.ks_2samp`, two-sided; NaN values (empty frames) left out.",
        "",
    ]
    path = Path(out) / "report.md"
    atomic_write_text(path, "\n".join(parts))
    return path


# ==========================================================================
# compare mode

FRAME_COLUMNS = ("sequence", "source", "frame") + desc.FRAME_DESCRIPTORS
SEQUENCE_COLUMNS = ("sequence", "source") + desc.SEQUENCE_DESCRIPTORS
KS_COLUMNS = ("descriptor", "level", "n_real", "n_generated", "real_median", "real_q1", "real_q3",
              "generated_median", "generated_q1", "generated_q3", "ks_statistic", "p_value", "verdict")
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


def _as_paths(p: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(p, (str, Path)):
        return [Path(p)]
    return [Path(x) for x in p]


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
        surface: ``"mask"`` or ``"sdf"`` (see :mod:`autodecoder.descriptors`).
        min_component_voxels: smaller components are not counted.
        names: how the two sets are called in the report and figures.
        progress: show progress bars.
        log: where messages go.
    """
    real_paths, generated_paths = _as_paths(real_paths), _as_paths(generated_paths)
    out = Path(out_dir)
    _check_options(surface, min_component_voxels)
    real_src = collect_sequences(real_paths, names[0])  # both sides checked before the long part
    generated_src = collect_sequences(generated_paths, names[1])
    warning = grid_warning(real_src, generated_src, names)
    if warning:
        log(f"warning: {warning}")
    kw = dict(threshold=threshold, surface=surface, min_component_voxels=min_component_voxels,
              workers=workers, progress=progress)
    real = describe(real_src, what=names[0], **kw)
    generated = describe(generated_src, what=names[1], **kw)
    out.mkdir(parents=True, exist_ok=True)
    ks_f = ks_table(real.frames, generated.frames, desc.FRAME_DESCRIPTORS, "frame")
    ks_s = (ks_table(real.sequences, generated.sequences, SEQUENCE_TESTED, "sequence")
            if len(real.sequences) >= 2 and len(generated.sequences) >= 2 else [])
    files = [write_csv(out / "descriptors_real.csv", real.frames, FRAME_COLUMNS),
             write_csv(out / "descriptors_generated.csv", generated.frames, FRAME_COLUMNS),
             write_csv(out / "sequences_real.csv", real.sequences, SEQUENCE_COLUMNS),
             write_csv(out / "sequences_generated.csv", generated.sequences, SEQUENCE_COLUMNS),
             write_csv(out / "ks_tests.csv", ks_f + ks_s, KS_COLUMNS)]
    files += plot_comparison(real.frames, generated.frames, ks_f, out, names)
    report = write_report(out, real, generated, ks_f, ks_s, names, real_paths, generated_paths, threshold,
                          surface, min_component_voxels, warning)
    files.append(report)
    log(f"compare: {len(real.frames)} {names[0]} frames ({len(real.sources)} sequences) vs "
        f"{len(generated.frames)} {names[1]} frames ({len(generated.sources)} sequences)")
    width = max(len(desc.LABELS[r["descriptor"]][0]) for r in ks_f) + 2
    for r in ks_f + ks_s:
        log(f"  {desc.LABELS[r['descriptor']][0]:<{width}} D {_d(r['ks_statistic']):>6}  "
            f"p {_p(r['p_value']):>8}  {r['verdict']}")
    log(f"report: {report}")
    return Comparison(report, real, generated, ks_f + ks_s, files)


# ==========================================================================
# reconstruction mode

RECONSTRUCTION_COLUMNS = ("sequence", "file", "frame", "dice", "jaccard", "mean_surface_distance",
                          "surface_distance_p95", "volume_training", "volume_reconstructed")


@dataclass
class ReconstructionResult:
    """What :func:`reconstruction` produced.

    Attributes:
        rows: one dict per sequence and frame (:data:`RECONSTRUCTION_COLUMNS`).
        summary: one dict per sequence (means over its frames), then ``"all"``.
        csv: ``reconstruction.csv``; report: ``reconstruction.md``; figure: ``reconstruction_dice.png``.
        resampled: whether the decoded grids were resampled to the training grids.
        epoch: the checkpoint's epoch.
    """

    rows: list[dict]
    summary: list[dict]
    csv: Path
    report: Path
    figure: Path
    resampled: bool
    epoch: int | None


def _parse_dims(dims: Sequence[int] | int | None) -> tuple[int, int, int] | None:
    if dims is None:
        return None
    d = [dims] if isinstance(dims, int) else list(dims)
    if len(d) == 1:
        d = d * 3
    if len(d) != 3 or any(int(v) < 2 for v in d):
        raise UserError(f"--dims {' '.join(map(str, d))}: expected one or three grid sizes >= 2")
    return tuple(int(v) for v in d)  # type: ignore[return-value]


def resample(sdf: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Linear resampling (``scipy.ndimage.zoom``, order 1) of an SDF frame to ``shape``; corner voxel
    centres stay on corner voxel centres, as voxel centres span [-1, 1] on every grid."""
    from scipy.ndimage import zoom
    shape = tuple(int(s) for s in shape)
    if sdf.shape == shape:
        return sdf
    out = zoom(sdf, [s / n for s, n in zip(shape, sdf.shape)], order=1, mode="nearest")
    if out.shape != shape:  # rounding of the zoom factors
        raise RuntimeError(f"resampled to {out.shape} instead of {shape}")
    return out.astype(np.float32, copy=False)


def score_frame(sequence: int, name: str, frame: int, truth: np.ndarray, rec: np.ndarray,
                threshold: float = 0.0) -> dict:
    """One row of :data:`RECONSTRUCTION_COLUMNS`: overlap and surface distances of two SDF frames
    ``(X, Y, Z)`` on the same grid, cells being ``sdf <= threshold``."""
    a, b = truth <= threshold, rec <= threshold
    sd = surface_distances(a, b)
    return {"sequence": sequence, "file": name, "frame": frame, "dice": dice(a, b), "jaccard": jaccard(a, b),
            "mean_surface_distance": sd.mean, "surface_distance_p95": sd.p95,
            "volume_training": int(a.sum()), "volume_reconstructed": int(b.sum())}


def score_files(truth_files: Sequence[Path], rec_files: Sequence[Path], threshold: float = 0.0) -> list[dict]:
    """Rows of :func:`score_frame` for reconstructions already on disk, file ``i`` against file ``i``.

    Both files of a pair must have the same grid and frame count.
    """
    rows = []
    for i, (tf, rf) in enumerate(zip(truth_files, rec_files)):
        with SequenceFile(tf) as a, SequenceFile(rf) as b:
            if (a.n_frames, a.grid_shape) != (b.n_frames, b.grid_shape):
                raise UserError(f"{rf}: {b.n_frames} frames of {b.grid_shape}, but {tf.name} has {a.n_frames} "
                                f"of {a.grid_shape}; decode at the training size to compare")
            rows.extend(score_frame(i, Path(tf).name, t, a.frame(t), b.frame(t), threshold)
                        for t in range(a.n_frames))
    return rows


def _summarise(rows: Sequence[dict], key: str, label: str) -> dict:
    return {"sequence": label, "file": rows[0]["file"] if key != "all" else "", "frames": len(rows),
            **{m: float(np.mean([r[m] for r in rows])) for m in
               ("dice", "jaccard", "mean_surface_distance", "surface_distance_p95")},
            "dice_min": float(np.min([r["dice"] for r in rows]))}


def reconstruction(exp: str | Path, epoch: str | int | None = None, out_dir: str | Path | None = None,
                   dims: Sequence[int] | int | None = None, threshold: float = 0.0, device: str | None = None,
                   progress: bool = True, log: Callable[[str], None] = print) -> ReconstructionResult:
    """Compare every learned sequence of ``exp`` with its training file, frame by frame.

    Args:
        exp: experiment folder (``specs.json`` with ``DataSource``, a trained model).
        epoch: ``None`` (no-epoch files), an epoch number or ``"latest"`` (as ``test.py -e``).
        out_dir: output folder (default ``<exp>/evaluation``).
        dims: decode at this grid (one or three sizes) and resample to each training grid;
            default: decode directly on each training file's grid.
        threshold: cells are ``sdf <= threshold`` in both the training and the decoded SDF.
        device: where the network runs (default: cuda if present).
    """
    from autodecoder.experiment import specs as specs_mod
    from autodecoder.io.sequences import list_sequence_files

    exp = Path(exp)
    specs = specs_mod.load(exp, specs_mod.TEST)
    dims = _parse_dims(dims)
    if not specs.get("DataSource"):
        raise UserError(f"{exp / 'specs.json'}: key \"DataSource\" is needed to find the training data")
    # the network's modules (torch) only once the inputs are known to be there
    from autodecoder.model import checkpoints
    from autodecoder.decoding.grid import decode_frames
    from autodecoder.model.decoder import Decoder
    from autodecoder.experiment.runtime import pick_device

    from autodecoder.experiment.workspace import data_folder
    data_dir = data_folder(specs, exp)
    files = list_sequence_files(data_dir, specs["UseHDF5"])
    trained = checkpoints.load_trained(exp, checkpoints.parse_epoch(epoch), specs["CodeLength"])
    if len(trained.codes) != len(files):
        raise UserError(f"{trained.source}: the model has {len(trained.codes)} learned codes but the training "
                        f"folder {data_dir} holds {len(files)} files; evaluate against the data it was trained on")
    dev = pick_device(device)
    decoder = Decoder.from_specs(specs)
    checkpoints.load_into(decoder, trained.state, trained.source)
    decoder.to(dev)
    out = Path(out_dir) if out_dir is not None else exp / "evaluation"
    infos = []
    for f in files:
        with SequenceFile(f) as s:
            infos.append((s.n_frames, s.grid_shape))
    resampled = dims is not None and any(tuple(g) != dims for _, g in infos)
    log(f"reconstruction: {len(files)} sequences of {data_dir} with {trained.source} (epoch {trained.epoch})"
        + (f", decoded at {'×'.join(map(str, dims))} and resampled to the training grid" if resampled else
           ", decoded on each training grid"))
    rows: list[dict] = []
    bar = tqdm(total=sum(n for n, _ in infos), unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        for i, (f, (n_frames, grid)) in enumerate(zip(files, infos)):
            bar.set_description(f.name)
            decode_dims = dims or tuple(grid)
            with SequenceFile(f) as truth:
                for t, rec in enumerate(decode_frames(decoder, trained.codes[i], trained.angles[i], decode_dims,
                                                      n_frames, specs["ReconstructionSubsetSize"], dev)):
                    rows.append(score_frame(i, f.name, t, truth.frame(t), resample(rec, grid), threshold))
                    bar.update(1)
    finally:
        bar.close()
    summary = [_summarise([r for r in rows if r["sequence"] == i], str(i), str(i)) for i in range(len(files))]
    summary.append(_summarise(rows, "all", "all"))
    out.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(out / "reconstruction.csv", rows, RECONSTRUCTION_COLUMNS)
    fig_path = _plot_reconstruction(rows, len(files), out / "reconstruction_dice.png")
    report = _write_reconstruction_report(out / "reconstruction.md", exp, trained, data_dir, infos, dims,
                                          resampled, threshold, summary)
    log(_summary_text(summary))
    log(f"report: {report}")
    return ReconstructionResult(rows, summary, csv_path, report, fig_path, resampled, trained.epoch)


def _summary_rows(summary: Sequence[dict]) -> list[list[str]]:
    return [[s["sequence"] if s["sequence"] != "all" else "**all**", s["file"], str(s["frames"]),
             f"{s['dice']:.3f}", f"{s['dice_min']:.3f}", f"{s['jaccard']:.3f}",
             _dist(s["mean_surface_distance"]), _dist(s["surface_distance_p95"])] for s in summary]


def _dist(x: float) -> str:
    return "inf (an empty mask)" if math.isinf(x) else f"{x:.2f}"


SUMMARY_HEADER = ("sequence", "file", "frames", "Dice", "worst Dice", "Jaccard", "mean surface distance",
                  "95th pct. surface distance")


def _summary_text(summary: Sequence[dict]) -> str:
    widths = [8, max(4, max(len(s["file"]) for s in summary)), 6, 6, 6, 7, 8, 8]
    head = ["seq", "file", "frames", "Dice", "worst", "Jaccard", "MSD", "SD95"]
    lines = ["  ".join(f"{h:<{w}}" for h, w in zip(head, widths))]
    for r in _summary_rows(summary):
        r[0] = r[0].replace("**", "")
        lines.append("  ".join(f"{c:<{w}}" for c, w in zip(r, widths)))
    return "\n".join(lines)


def _plot_reconstruction(rows: Sequence[dict], n_seq: int, path: Path) -> Path:
    plt = _plt()
    from matplotlib import ticker
    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=100)
    for i in range(n_seq):
        r = [x for x in rows if x["sequence"] == i]
        ax.plot([x["frame"] for x in r], [x["dice"] for x in r], marker="o", ms=3, label=r[0]["file"])
    ax.set_xlabel("frame")
    ax.set_ylabel("Dice (reconstructed vs training mask)")
    ax.set_ylim(max(0.0, min(0.5, min(x["dice"] for x in rows) - 0.05)), 1.005)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if n_seq <= 12:
        ax.legend(fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    _savefig(fig, path)
    return path


def _write_reconstruction_report(path: Path, exp: Path, trained, data_dir: Path, infos, dims, resampled: bool,
                                 threshold: float, summary: Sequence[dict]) -> Path:
    grids = sorted({"×".join(map(str, g)) for _, g in infos})
    frames = sorted({n for n, _ in infos})
    if resampled:
        how = (f"The model was decoded at {'×'.join(map(str, dims))} and **resampled** to the training grid "
               f"({', '.join(grids)}) by linear interpolation of the SDF (`scipy.ndimage.zoom`, order 1) "
               "before the comparison; part of the error may come from the resampling.")
    else:
        how = f"The model was decoded directly on the training grid of each file ({', '.join(grids)})."
    text = [
        f"# Reconstruction quality: `{exp}`",
        "",
        f"* Model: `{trained.source}` (epoch {trained.epoch}); training data: `{data_dir}` "
        f"({len(infos)} sequences, {', '.join(map(str, frames))} frames).",
        f"* {how}",
        f"* Each frame is decoded at its training time; cells are `sdf <= {threshold:g}` in both.",
        "",
        "## How to read this",
        "",
        "Dice (2·overlap / (sum of both volumes)) and Jaccard (overlap / union) are 1 for a perfect "
        "reconstruction and 0 when the shapes do not overlap; Dice above about 0.9 means the shapes agree "
        "closely. The surface distances say how far, in voxels, the reconstructed surface lies from the "
        "true one: the mean over both surfaces, and the 95th percentile (95 % of the surface is closer "
        "than this). A value around 1 voxel is at the resolution limit of the data; `inf` means that one "
        "of the two masks of a frame is empty. `worst Dice` is the lowest frame of the sequence.",
        "",
        "## Per sequence (means over frames)",
        "",
        _md_table(SUMMARY_HEADER, _summary_rows(summary)),
        "",
        "![Dice per frame and sequence](reconstruction_dice.png)",
        "",
        "Every frame: `reconstruction.csv`.",
        "",
    ]
    atomic_write_text(path, "\n".join(text))
    return path


# ==========================================================================
# command line

def main(argv: Sequence[str] | None = None) -> int:
    """``python evaluate.py reconstruction|compare …``; returns the exit status."""
    from autodecoder.cli.commands import _guard, _Parser

    p = _Parser(prog="evaluate.py", description="How close are learned and generated cells to real ones?",
                epilog="examples: python evaluate.py reconstruction -x experiments/demo -e latest; "
                       "python evaluate.py compare data/demo experiments/demo/OUT_randomgen --out evaluation")
    sub = p.add_subparsers(dest="mode", metavar="MODE", required=True, parser_class=_Parser)
    r = sub.add_parser("reconstruction", help="Dice, Jaccard and surface distances of the reconstructed training "
                       "sequences, frame by frame")
    r.add_argument("-x", "--experiment", required=True, help="experiment folder holding specs.json")
    r.add_argument("-e", "--epoch", help="epoch N, or latest (default: the no-epoch files model.pth, …)")
    r.add_argument("--dims", type=int, nargs="+", metavar="N",
                   help="decode at this grid (N or X Y Z) and resample to the training grid "
                        "(default: decode on the training grid)")
    r.add_argument("--threshold", type=float, default=0.0, help="inside is sdf <= THRESHOLD (default 0)")
    r.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if present, else cpu)")
    r.add_argument("--out", help="output folder (default: <experiment>/evaluation)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")

    c = sub.add_parser("compare", help="shape descriptors of two sets of cells, KS tests, plots and a report")
    c.add_argument("paths", nargs="*", metavar="REAL GENERATED",
                   help="a file or folder of real cells and one of generated cells (more with --real/--generated)")
    c.add_argument("--real", nargs="+", default=[], metavar="PATH", help="(more) real files or folders")
    c.add_argument("--generated", nargs="+", default=[], metavar="PATH", help="(more) generated files or folders")
    c.add_argument("--out", default="evaluation", help="output folder (default: evaluation)")
    c.add_argument("--threshold", type=float, default=0.0, help="inside is sdf <= THRESHOLD in SDF files (default 0)")
    c.add_argument("--workers", type=int, help=f"worker processes (default: {default_workers()}; "
                   "small inputs run in this process)")
    c.add_argument("--surface", choices=desc.SURFACES, default="mask",
                   help="surface area from the smoothed mask (default; the same for both sets) or from the SDF")
    c.add_argument("--min-component-voxels", type=int, default=1,
                   help="components smaller than this are not counted (default 1)")
    c.add_argument("--names", nargs=2, default=[REAL, GENERATED], metavar=("REAL", "GENERATED"),
                   help="names of the two sets in the report (default: real generated)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")

    def go() -> int:
        args = p.parse_args(argv)
        if args.mode == "reconstruction":
            reconstruction(args.experiment, epoch=args.epoch, out_dir=args.out, dims=args.dims,
                           threshold=args.threshold, device=args.device, progress=not args.no_progress)
            return 0
        if len(args.paths) not in (0, 2):
            raise UserError(f"evaluate.py compare: expected REAL GENERATED (two paths), got {len(args.paths)} "
                            "(use --real and --generated for more)")
        real = args.paths[:1] + args.real
        generated = args.paths[1:] + args.generated
        if not real or not generated:
            raise UserError("evaluate.py compare: give REAL GENERATED, or --real … --generated … (see --help)")
        if args.workers is not None and args.workers < 1:
            raise UserError(f"--workers {args.workers}: expected an integer >= 1")
        compare(real, generated, out_dir=args.out, threshold=args.threshold, workers=args.workers,
                surface=args.surface, min_component_voxels=args.min_component_voxels, names=tuple(args.names),
                progress=not args.no_progress)
        return 0
    return _guard(go)
