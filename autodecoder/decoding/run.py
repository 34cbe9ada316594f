"""``test.py -t TYPE``: decode the sequences of a type and write them, one file per sequence (docs/method.md §5).

Each type is a small class (:class:`OutputType`) that returns its jobs (codes and rotations, see
:mod:`autodecoder.decoding.types`) and may look at the frames as they are decoded (``interpolate``
draws a contact sheet, ``fit`` scores each frame against its target) and finish with files of its
own. :func:`run` is the same for all: load the model, decode each job frame by frame, write each
frame as it comes with the file's provenance in its attributes, then the exports.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.io
from tqdm import tqdm

from autodecoder import __version__
from autodecoder.decoding import priors
from autodecoder.decoding.fitting import DEFAULT_ITERATIONS, DEFAULT_LR, check_specs, fit_code
from autodecoder.decoding.options import (DEFAULT_PATH, DEFAULT_PRIOR, Exports, LatentOptions, Shard, check_options,
                                          check_shard, resolve_storage)
from autodecoder.decoding.provenance import ORIGIN_KEYS, output_provenance, same_origin
from autodecoder.decoding.trained import TrainedModel, load_model
from autodecoder.decoding.types import Job, plan, read_centre
from autodecoder.evaluation.metrics import dice
from autodecoder.experiment import workspace as ws
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import (atomic_path, check_memory, check_output_folder, clean_stale_temporaries,
                                           ensure_writable_dir, hold_output_lock)
from autodecoder.experiment.runtime import resolve_seed
from autodecoder.io.exports import export_sequence
from autodecoder.io.pictures import contact_sheet, mip
from autodecoder.io.sequences import SequenceFile, SequenceWriter, Storage, sequence_suffix
from autodecoder.model.footprint import decoding_bytes


class OutputType:
    """A type of ``test.py``: its jobs, the grid it decodes on, what it records and does with the frames."""

    tag: str | None = None  # the middle part of the output names of the added types

    def __init__(self, kind: str, model: TrainedModel, seed: int, opts: LatentOptions, threshold: float,
                 log: Callable[[str], None], progress: bool = True) -> None:
        self.kind, self.model, self.seed, self.opts, self.threshold = kind, model, seed, opts, threshold
        self.log, self.progress = log, progress
        self.dims = tuple(model.specs["ReconstructionDims"])
        self.n_frames = model.specs["ReconstructionFramesPerSequence"]
        self.attrs: dict[str, Any] = {}
        self.whole = True  # False when --shard gives this process only some of the sequences

    def jobs(self) -> list[Job]:
        return plan(self.kind, self.model.codes, self.model.angles, self.model.specs["NumSequences"], self.seed,
                    self.opts)

    def frame(self, job: Job, t: int, frame: np.ndarray) -> None:
        """Called with every decoded frame, float32 ``(X, Y, Z)``."""

    def sequence_attrs(self) -> dict[str, Any]:
        """Attributes added to a file once all its frames are written."""
        return {}

    def finish(self, out: Path, written: list[Path]) -> None:
        """Called once every file is written."""


class Sample(OutputType):
    def jobs(self) -> list[Job]:
        m, name = self.model, self.opts.prior or DEFAULT_PRIOR
        # fitted with the fixed seed 0: one code table gives one saved prior, whatever --seed draws
        prior = priors.fit_prior(name, m.codes, pca=self.opts.pca, seed=0, source=str(m.source))
        saved = ws.latent_prior_file(m.experiment, m.requested, name, self.opts.pca)
        try:
            prior.save(saved)
            self.log(f"sample: {prior.describe()}; saved to {saved}")
        except OSError as e:
            self.log(f"warning: could not save the fitted distribution to {saved} ({e.strerror})")
        centre = read_centre(self.opts.around, m.codes, m.angles) if self.opts.around is not None else None
        self.tag = centre.tag if centre is not None else None
        self.attrs["latent_distribution"] = str(saved)
        return plan("sample", m.codes, m.angles, m.specs["NumSequences"], self.seed, self.opts, prior, centre)


class Interpolate(OutputType):
    def jobs(self) -> list[Job]:
        self.tag = ws.interpolation_tag(self.opts.start, self.opts.end, self.opts.path or DEFAULT_PATH)
        self.mips: list[np.ndarray] = []
        return super().jobs()

    def frame(self, job: Job, t: int, frame: np.ndarray) -> None:
        self.mips.append(mip(frame <= self.threshold))

    def finish(self, out: Path, written: list[Path]) -> None:
        if not self.whole:  # a shard holds only some rows; a partial sheet under the common name would clash
            self.log("interpolate: no contact sheet with --shard (each shard decodes only some of the steps)")
            return
        sheet = ws.interpolation_sheet(out, self.tag)
        contact_sheet(self.mips, sheet, columns=self.n_frames)
        self.log(f"interpolate: contact sheet (rows: {len(written)} steps from code {self.opts.start} to "
                 f"{self.opts.end}; columns: {self.n_frames} frames; MIP of sdf <= {self.threshold:g}) → {sheet}")


class Fit(OutputType):
    def jobs(self) -> list[Job]:
        m, o = self.model, self.opts
        target = Path(o.target)
        iterations = o.iterations if o.iterations is not None else DEFAULT_ITERATIONS
        lr = o.lr if o.lr is not None else DEFAULT_LR
        self.log(f"fit: {target} with the decoder of {m.source} frozen, from the mean of {len(m.codes)} learned "
                 f"codes; {iterations} iterations, lr {lr:g}, seed {self.seed}"
                 + (f", loss clamped at ±{o.clamp:g}" if o.clamp is not None else ""))
        self.fitted = fit_code(m.decoder, m.codes.astype(np.float64).mean(axis=0), m.specs, target,
                               iterations=iterations, lr=lr, seed=self.seed, device=m.device,
                               progress=self.progress, log=self.log, clamp=o.clamp)
        self.target = SequenceFile(target)
        self.dims, self.n_frames, self.tag = self.target.grid_shape, self.target.n_frames, target.stem
        self.dice: list[float] = []
        self.attrs.update({"target": str(target.resolve()), "fit_iterations": iterations, "fit_lr": lr,
                           "fit_clamp": "as training" if o.clamp is None else float(o.clamp),
                           "fit_loss_start": self.fitted.start_loss, "fit_loss_final": self.fitted.final_loss,
                           "dice_threshold": self.threshold})
        return [Job(0, self.fitted.code, self.fitted.angles, f"fitted to {target.name}")]

    def frame(self, job: Job, t: int, frame: np.ndarray) -> None:
        self.dice.append(dice(frame <= self.threshold, self.target.frame(t) <= self.threshold))

    def sequence_attrs(self) -> dict[str, Any]:
        return {"dice_per_frame": self.dice, "dice_mean": float(np.mean(self.dice))}

    def finish(self, out: Path, written: list[Path]) -> None:
        self.target.close()
        code_file = ws.fit_code_file(out, self.tag)
        write_fit_code(code_file, self.fitted, self.dice, self.attrs, written[0])
        self.log("fit: Dice (sdf <= {:g}) against the target per frame: {}".format(
            self.threshold, " ".join(f"{d:.3f}" for d in self.dice)))
        self.log(f"fit: mean Dice {np.mean(self.dice):.4f}; code and angles → {code_file}; "
                 f"reconstruction → {written[0]}")


CLASSES: dict[str, type[OutputType]] = {"sample": Sample, "interpolate": Interpolate, "fit": Fit}


def run(exp: str | Path, kind: str, epoch: str | int | None = None, device: str | None = None,
        seed: int | None = None, out_dir: str | Path | None = None, progress: bool = True,
        log: Callable[[str], None] = print, exports: Exports | None = None,
        options: LatentOptions | None = None, adaptive: bool = False, replace: bool = False,
        ignore_memory: bool = False, store: str | None = None, band: int | None = None,
        shard: Shard | None = None) -> list[Path]:
    """Decode and write the sequences of ``kind`` for the experiment ``exp``; returns the SDF files written.

    With ``exports``, each file's TIFF / PNG / mesh exports go to ``<out>/<file stem>/``. ``options``
    are those of ``sample``, ``fit`` and ``interpolate`` (:class:`~autodecoder.decoding.options.LatentOptions`).
    ``adaptive``: adaptive extraction (exact masks and surfaces at 0 and the export threshold,
    interpolated SDF values away from them; see :mod:`autodecoder.decoding.adaptive`), else dense decoding.
    ``store``: ``dense``, ``compact`` or ``mask`` (default compact with ``adaptive``, else dense), ``band``
    the compact band in voxels (:func:`autodecoder.decoding.options.resolve_storage`). ``shard``: write only
    this shard's sequences, each exactly as one run would (no ``created`` attribute, so that the shards'
    files are byte for byte those of one ``--shard 0/1`` run), holding a lock of its own.

    The output folder is locked while the run writes into it; outputs of another experiment,
    checkpoint, epoch or type already in it are refused unless ``replace`` (which removes them and
    their exports first); temporaries of killed runs are removed; the memory one frame needs is
    checked before decoding (``ignore_memory`` overrides).
    """
    exp = Path(exp)
    opts = check_options(kind, options)
    storage = resolve_storage(store, adaptive, exports, band)
    check_shard(shard, kind, seed, replace)
    model = load_model(exp, epoch, device)
    if kind == "fit":
        check_specs(model.specs, str(exp / "specs.json"))
        if not Path(opts.target).is_file():
            raise UserError(f"--target {opts.target}: file not found")
    out = ensure_writable_dir(Path(out_dir) if out_dir is not None else ws.output_dir(exp, kind), "output")
    with hold_output_lock(out, shard.lock_folder if shard else None, f"shard {shard}", log):
        _check_folder(out, model, kind, replace, log)  # refused before anything on disk changes
        if shard is None:  # another host's shard may be writing its temporaries here: left to an unsharded run
            clean_stale_temporaries(out, log)
        seed = resolve_seed(seed)
        threshold = exports.threshold if exports is not None else 0.0
        out_type = CLASSES.get(kind, OutputType)(kind, model, seed, opts, threshold, log, progress)
        jobs = out_type.jobs()  # the whole plan first: every sequence keeps its draw, index and name
        if shard is not None:
            jobs, out_type.whole = shard.take(jobs), shard.count == 1
        _check_memory(out_type, adaptive, ignore_memory, log)
        d = out_type.dims
        log(f"{kind}: {len(jobs)} sequences{f' (shard {shard})' if shard else ''} of {out_type.n_frames} frames "
            f"on a {d[0]}×{d[1]}×{d[2]} grid from {model.source} (epoch {model.epoch}), seed {seed}, "
            f"device {model.device}, {storage.mode} storage → {out}")
        written = _write_all(out_type, jobs, out, _Writing(adaptive, storage, shard is None), exports, progress)
        out_type.finish(out, written)
    log(f"wrote {len(written)} files to {out}")
    return written


class _Writing:
    """How the frames of a run are decoded and stored."""

    def __init__(self, adaptive: bool, storage: Storage, stamp: bool) -> None:
        self.adaptive, self.storage, self.stamp = adaptive, storage, stamp

    def levels(self, threshold: float) -> tuple[float, ...]:
        """The levels adaptive extraction keeps exact: a compact file's too (0, 0.035, threshold)."""
        return self.storage.levels if self.storage.mode == "compact" else (threshold,)


def _origin(model: TrainedModel, kind: str) -> dict[str, Any]:
    """The provenance attributes that tell this run's outputs from others' (:data:`ORIGIN_KEYS`)."""
    return {"experiment": str(model.experiment.resolve()), "checkpoint": str(model.source.resolve()),
            "epoch": -1 if model.epoch is None else int(model.epoch), "type": kind}


def _check_folder(out: Path, model: TrainedModel, kind: str, replace: bool, log: Callable[[str], None]) -> None:
    ext = sequence_suffix(model.specs["UseHDF5"])
    removed = check_output_folder(out, _origin(model, kind), ORIGIN_KEYS, output_provenance, f"*{ext}", replace,
                                  log, same_origin)
    for f in removed:  # and their exports, which carry the file's stem
        shutil.rmtree(out / f.stem, ignore_errors=True)


def _check_memory(out_type: OutputType, adaptive: bool, ignore: bool, log: Callable[[str], None]) -> None:
    m = out_type.model
    whole = out_type.n_frames if not m.specs["UseHDF5"] else 0  # a MAT file is held whole until written
    need = decoding_bytes(m.specs, out_type.dims, adaptive, whole)
    check_memory(need, m.device, f"decoding a {'×'.join(map(str, out_type.dims))} grid", "use a smaller "
                 "\"ReconstructionDims\" (or --adaptive, or HDF5 output for many frames)", ignore, log)


def _write_all(out_type: OutputType, jobs: list[Job], out: Path, how: _Writing, exports: Exports | None,
               progress: bool) -> list[Path]:
    """Decode every job frame by frame into its file (and exports); returns the files."""
    m = out_type.model
    ext = sequence_suffix(m.specs["UseHDF5"]).lstrip(".")
    written = []
    with tqdm(total=len(jobs) * out_type.n_frames, unit="frame", disable=not progress, dynamic_ncols=True) as bar:
        for job in jobs:
            path = out / ws.output_name(out_type.kind, job.index, job.angles, ext, tag=out_type.tag)
            bar.set_description(path.name)
            with SequenceWriter(path, out_type.n_frames, out_type.dims, m.specs["HDF5CompressionLevel"],
                                _attrs(out_type, job, how.adaptive, how.stamp), how.storage) as writer:
                for t, frame in enumerate(m.frames(job.code, job.angles, out_type.dims, out_type.n_frames,
                                                   adaptive=how.adaptive, levels=how.levels(out_type.threshold))):
                    writer.write_frame(t, frame)
                    out_type.frame(job, t, frame)
                    bar.update(1)
                writer.update_attrs(out_type.sequence_attrs())
            written.append(path)
            if exports is not None and exports.any():
                export_sequence(path, out, tif=exports.tif, png=exports.png, mesh=exports.mesh,
                                threshold=exports.threshold, units=exports.units, voxel_size=exports.voxel_size)
    return written


def _attrs(out_type: OutputType, job: Job, adaptive: bool, stamp: bool = True) -> dict[str, Any]:
    """The provenance attributes of one output file; ``stamp``: with the time it was made (``created``)."""
    m = out_type.model
    attrs = {**_origin(m, out_type.kind), "sequence_index": job.index, "code_origin": job.origin,
             "rotation_angles": [float(a) for a in job.angles], "seed": out_type.seed,
             "frames": out_type.n_frames, "grid": list(out_type.dims), "autodecoder_version": __version__,
             "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "extraction": "adaptive" if adaptive else "dense",
             **out_type.attrs, **job.attrs}
    if not stamp:  # shards: the only attribute that differs between runs, left out so that the bytes agree
        del attrs["created"]
    if out_type.kind in ("sample", "fit", "interpolate"):
        attrs["code"] = [float(c) for c in job.code]
    return attrs


def write_fit_code(path: Path, fitted: Any, dice_frames: list[float], info: dict[str, Any], rec: Path) -> None:
    """``fit_<stem>_code.mat``: ``lat_vecs`` (1, CodeLength) and ``rot_ang`` (1, 3) as in the original's tables,
    plus the scores (readable by ``--around`` and by :func:`autodecoder.io.sequences.read_table`)."""
    mdict = {"lat_vecs": np.asarray(fitted.code, np.float32).reshape(1, -1),
             "rot_ang": np.asarray(fitted.angles, np.float32).reshape(1, 3),
             "dice_per_frame": np.asarray(dice_frames, np.float64), "dice_mean": float(np.mean(dice_frames)),
             "loss_per_iteration": np.asarray(fitted.losses, np.float64), "reconstruction": rec.name,
             **{k: v for k, v in info.items() if isinstance(v, (int, float, str))}}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            scipy.io.savemat(fh, mdict)
