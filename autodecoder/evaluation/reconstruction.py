"""``evaluate.py reconstruction``: how well does a trained model reproduce its training cells?

Every learned sequence of an experiment is decoded with :func:`autodecoder.decoding.trained.load_model`
(so with the experiment's decode options: ``FastPath``, ``Threads``, ``Bf16Autocast``, ``Compile`` …)
on the grid and frame count of its own training file, and compared frame by frame with the training
mask: Dice, Jaccard, mean and 95th-percentile symmetric surface distance (voxels). A model decoded at
another resolution (``dims``) is resampled to the training grid by linear interpolation of the SDF
(``scipy.ndimage.zoom``, order 1) and the report says so. Writes ``reconstruction.csv``,
``reconstruction.md`` and ``reconstruction_dice.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy.ndimage import zoom
from tqdm import tqdm

from autodecoder.decoding.trained import TrainedModel, load_model
from autodecoder.evaluation.figures import plot_reconstruction
from autodecoder.evaluation.metrics import dice, jaccard, surface_distances
from autodecoder.evaluation.report import summary_text, write_csv, write_reconstruction_report
from autodecoder.experiment import specs as specs_mod
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.workspace import data_folder
from autodecoder.io.discovery import list_sequence_files
from autodecoder.io.sequences import SequenceFile

__all__ = ["RECONSTRUCTION_COLUMNS", "ReconstructionResult", "resample", "score_frame", "score_files",
           "reconstruction"]

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
    """One or three grid sizes (>= 2) as ``(X, Y, Z)``, or None."""
    if dims is None:
        return None
    d = [dims] if isinstance(dims, int) else list(dims)
    if len(d) == 1:
        d = d * 3
    if len(d) != 3 or any(int(v) < 2 for v in d):
        raise UserError(f"--dims {' '.join(map(str, d))}: expected one or three grid sizes >= 2")
    return tuple(int(v) for v in d)  # type: ignore[return-value]


def resample(sdf: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Linear resampling (``scipy.ndimage.zoom``, order 1) of an SDF frame ``(X, Y, Z)`` to ``shape``;
    corner voxel centres stay on corner voxel centres, as voxel centres span [-1, 1] on every grid."""
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


def _summarise(rows: Sequence[dict], label: str) -> dict:
    """Means over ``rows`` (one sequence, or ``"all"``) and the worst Dice."""
    return {"sequence": label, "file": rows[0]["file"] if label != "all" else "", "frames": len(rows),
            **{m: float(np.mean([r[m] for r in rows])) for m in
               ("dice", "jaccard", "mean_surface_distance", "surface_distance_p95")},
            "dice_min": float(np.min([r["dice"] for r in rows]))}


def _score_all(model: TrainedModel, files: Sequence[Path], infos: Sequence[tuple[int, tuple[int, int, int]]],
               dims: tuple[int, int, int] | None, threshold: float, progress: bool) -> list[dict]:
    """Decode sequence ``i`` with code and angles ``i`` and score it against training file ``i``."""
    rows: list[dict] = []
    bar = tqdm(total=sum(n for n, _ in infos), unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        for i, (f, (n_frames, grid)) in enumerate(zip(files, infos)):
            bar.set_description(f.name)
            with SequenceFile(f) as truth:
                for t, rec in enumerate(model.frames(model.codes[i], model.angles[i], dims or grid, n_frames)):
                    rows.append(score_frame(i, f.name, t, truth.frame(t), resample(rec, grid), threshold))
                    bar.update(1)
    finally:
        bar.close()
    return rows


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
    exp = Path(exp)
    specs = specs_mod.load(exp, specs_mod.TEST)
    dims = _parse_dims(dims)
    if not specs.get("DataSource"):
        raise UserError(f"{exp / 'specs.json'}: key \"DataSource\" is needed to find the training data")
    data_dir = data_folder(specs, exp)
    files = list_sequence_files(data_dir, specs["UseHDF5"])
    model = load_model(exp, epoch, device, specs=specs)
    if len(model.codes) != len(files):
        raise UserError(f"{model.source}: the model has {len(model.codes)} learned codes but the training "
                        f"folder {data_dir} holds {len(files)} files; evaluate against the data it was trained on")
    infos = []
    for f in files:
        with SequenceFile(f) as s:
            infos.append((s.n_frames, tuple(s.grid_shape)))
    resampled = dims is not None and any(tuple(g) != dims for _, g in infos)
    log(f"reconstruction: {len(files)} sequences of {data_dir} with {model.source} (epoch {model.epoch})"
        + (f", decoded at {'×'.join(map(str, dims))} and resampled to the training grid" if resampled else
           ", decoded on each training grid"))
    rows = _score_all(model, files, infos, dims, threshold, progress)
    summary = [_summarise([r for r in rows if r["sequence"] == i], str(i)) for i in range(len(files))]
    summary.append(_summarise(rows, "all"))
    out = Path(out_dir) if out_dir is not None else exp / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(out / "reconstruction.csv", rows, RECONSTRUCTION_COLUMNS)
    fig_path = plot_reconstruction(rows, len(files), out / "reconstruction_dice.png")
    report = write_reconstruction_report(out / "reconstruction.md", exp, model, data_dir, infos, dims, resampled,
                                         threshold, summary)
    log(summary_text(summary))
    log(f"report: {report}")
    return ReconstructionResult(rows, summary, csv_path, report, fig_path, resampled, model.epoch)
