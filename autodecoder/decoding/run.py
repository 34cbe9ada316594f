"""``test.py -t TYPE``: which codes and rotations to decode (SPEC §5), and the types this project adds.

The original's types, unchanged:

* ``reconstruct``: every row of the learned code table with its learned angles.
* ``generate``: ``NumSequences`` new codes drawn N(0, 0.001²) per component,
  angles U(-π, π).
* ``generate_filo``: the learned codes in shuffled row order plus N(0, 1e-4²)
  noise (drawn before the shuffle), angles U(-π, π).

Added (see :mod:`autodecoder.latent` and :mod:`autodecoder.fitting`), each
with its own output folder:

* ``sample``: ``--num`` codes from a Gaussian fitted to the learned codes
  (``--pca K`` components, spread scaled by ``--temperature``), angles
  U(-π, π) as ``generate``; with ``--around CODE`` the Gaussian is centred on
  that code (a file written by ``fit``, or a row of the learned table) and its
  angles are kept. The fitted distribution is saved next to the code table.
* ``fit``: a new code (and angles) fitted to ``--target FILE`` with the
  decoder frozen; writes the reconstruction on the target's grid with the
  Dice of every frame, and the code file ``fit_<stem>_code.mat``.
* ``interpolate``: ``--steps`` sequences along the path (``--path``) from
  learned code ``--from`` to ``--to``, rotations along the SO(3) geodesic,
  and a contact sheet of their MIPs (steps × frames).

Each sequence is decoded frame by frame with :func:`autodecoder.grid.decode_frames`
and written as it is decoded, with its provenance in the file's attributes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from autodecoder import __version__
from autodecoder.model import checkpoints
from autodecoder.experiment import specs as specs_mod
from autodecoder.experiment import workspace as ws
from autodecoder.experiment.errors import UserError
from autodecoder.io.exports import export_sequence
from autodecoder.decoding.grid import decode_frames, decode_options
from autodecoder.io.sequences import SequenceFile, SequenceWriter, read_table, sequence_suffix
from autodecoder.model.decoder import Decoder
from autodecoder.experiment.runtime import pick_device, resolve_seed

TYPES = ("reconstruct", "generate", "generate_filo", "sample", "fit", "interpolate")
GENERATE_CODE_STD = 0.001
FILO_NOISE_STD = 1e-4


@dataclass
class Exports:
    """What to write beside each output file (see :func:`autodecoder.exports.export_sequence`)."""

    tif: bool = False
    png: bool = False
    mesh: str | None = None
    threshold: float = 0.0
    units: str = "normalised"
    voxel_size: tuple[float, float, float] | None = None

    def any(self) -> bool:
        return self.tif or self.png or self.mesh is not None


@dataclass
class Job:
    """One output sequence: its index in the output names, code (CodeLength,), angles (3,), and origin."""

    index: int
    code: np.ndarray
    angles: np.ndarray
    origin: str
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class LatentOptions:
    """The options of the added types (``None``: not given). See :data:`OPTION_TYPES` for who uses which."""

    temperature: float | None = None
    num: int | None = None
    pca: int | None = None
    around: str | None = None
    target: str | None = None
    start: int | None = None
    end: int | None = None
    steps: int | None = None
    path: str | None = None
    iterations: int | None = None
    lr: float | None = None
    clamp: float | None = None


#: Option → (its command-line flag, the types that use it).
OPTION_TYPES = {
    "temperature": ("--temperature", ("sample",)),
    "num": ("--num", ("sample",)),
    "pca": ("--pca", ("sample",)),
    "around": ("--around", ("sample",)),
    "target": ("--target", ("fit",)),
    "iterations": ("--iterations", ("fit",)),
    "lr": ("--lr", ("fit",)),
    "clamp": ("--clamp", ("fit",)),
    "start": ("--from", ("interpolate",)),
    "end": ("--to", ("interpolate",)),
    "steps": ("--steps", ("interpolate",)),
    "path": ("--path", ("interpolate",)),
}
REQUIRED_OPTIONS = {"fit": ("target",), "interpolate": ("start", "end")}
REQUIRED_USAGE = {"fit": "--target FILE", "interpolate": "--from I --to J"}
DEFAULT_TEMPERATURE = 1.0
DEFAULT_STEPS = 5
DEFAULT_PATH = "slerp"


def check_options(kind: str, options: LatentOptions | None) -> LatentOptions:
    """Refuse an option given to a type that does not use it, or a type's missing required option."""
    if kind not in TYPES:
        raise UserError(f"-t {kind}: unknown type; expected one of {', '.join(TYPES)}")
    opts = options or LatentOptions()
    for f in fields(opts):
        flag, users = OPTION_TYPES[f.name]
        if getattr(opts, f.name) is not None and kind not in users:
            raise UserError(f"{flag}: only used by -t {' / -t '.join(users)}, not by -t {kind}")
    missing = [OPTION_TYPES[n][0] for n in REQUIRED_OPTIONS.get(kind, ()) if getattr(opts, n) is None]
    if missing:
        raise UserError(f"-t {kind}: needs {REQUIRED_USAGE[kind]} (missing {' and '.join(missing)})")
    if opts.num is not None and opts.num < 1:
        raise UserError(f"--num {opts.num}: expected an integer >= 1")
    if opts.temperature is not None and not (opts.temperature >= 0 and math.isfinite(opts.temperature)):
        raise UserError(f"--temperature {opts.temperature}: expected a number >= 0")
    if opts.steps is not None and opts.steps < 2:
        raise UserError(f"--steps {opts.steps}: expected an integer >= 2 (both ends are included)")
    if opts.path is not None and opts.path not in ("linear", "slerp"):
        raise UserError(f"--path {opts.path}: expected linear or slerp")
    if opts.iterations is not None and opts.iterations < 1:
        raise UserError(f"--iterations {opts.iterations}: expected an integer >= 1")
    if opts.lr is not None and not (opts.lr > 0 and math.isfinite(opts.lr)):
        raise UserError(f"--lr {opts.lr}: expected a number > 0")
    if opts.clamp is not None and not (opts.clamp > 0 and math.isfinite(opts.clamp)):
        raise UserError(f"--clamp {opts.clamp}: expected a number > 0")
    if opts.pca is not None and opts.pca < 1:
        raise UserError(f"--pca {opts.pca}: expected an integer >= 1")
    return opts


@dataclass
class Centre:
    """The code that ``sample --around`` varies: its code, its angles and where it came from."""

    code: np.ndarray
    angles: np.ndarray
    origin: str
    tag: str


def read_centre(value: str, codes: np.ndarray, angles: np.ndarray) -> Centre:
    """``--around``: a code file (``fit_<stem>_code.mat`` with ``lat_vecs`` and ``rot_ang``, or ``.npz``/``.npy``
    holding one code) or the row number of a learned code."""
    path = Path(value)
    length = codes.shape[1]
    if not path.exists() and value.isdigit():
        i = int(value)
        if i >= len(codes):
            raise UserError(f"--around {value}: no learned code {i} (the table has rows 0 … {len(codes) - 1})")
        return Centre(codes[i].copy(), angles[i].copy(), f"learned code {i}", f"around_{i:03d}")
    if not path.is_file():
        raise UserError(f"--around {value}: no such code file (nor a learned code's row number)")
    rot = None
    if path.suffix.lower() == ".mat":
        code = read_table(path, "lat_vecs", length)
        import scipy.io
        if "rot_ang" in [w[0] for w in scipy.io.whosmat(path)]:
            rot = read_table(path, "rot_ang", 3)
    elif path.suffix.lower() in (".npz", ".npy"):
        try:
            data = np.load(path, allow_pickle=False)
            if isinstance(data, np.lib.npyio.NpzFile):
                key = next((k for k in ("lat_vecs", "code") if k in data.files), None)
                if key is None:
                    raise UserError(f"--around {value}: no \"lat_vecs\" or \"code\" array in the file")
                rot = np.asarray(data["rot_ang"], np.float32).reshape(-1, 3) if "rot_ang" in data.files else None
                data = data[key]
            code = np.asarray(data, dtype=np.float32).reshape(-1, length) if np.size(data) % length == 0 else None
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"--around {value}: cannot read ({e})") from None
        if code is None:
            raise UserError(f"--around {value}: expected a code of length {length} (CodeLength)")
    else:
        raise UserError(f"--around {value}: expected a .mat, .npz or .npy code file, or a learned code's row number")
    if len(code) != 1:
        raise UserError(f"--around {value}: holds {len(code)} codes; expected one")
    ang = rot[0] if rot is not None and len(rot) == 1 else np.zeros(3, np.float32)
    return Centre(code[0], ang.astype(np.float32), f"code of {path.name}", f"around_{path.stem}")


def plan(kind: str, codes: np.ndarray, angles: np.ndarray, num_sequences: int, seed: int,
         options: LatentOptions | None = None, gaussian: Any = None, centre: Centre | None = None) -> list[Job]:
    """The sequences that ``kind`` decodes, drawn reproducibly from ``seed``.

    ``sample`` uses ``gaussian`` (a :class:`autodecoder.latent.LatentGaussian`;
    fitted to ``codes`` when not given) and ``centre`` (``--around``);
    ``fit`` is not planned here (see :func:`run`).
    """
    if kind == "sample":
        from autodecoder.decoding import latent
        opts = options or LatentOptions()
        g = gaussian if gaussian is not None else latent.fit_gaussian(codes, pca=opts.pca)
        n = opts.num if opts.num is not None else num_sequences
        temp = opts.temperature if opts.temperature is not None else DEFAULT_TEMPERATURE
        rng = np.random.default_rng(seed)
        new = g.draw(n, temp, rng, center=None if centre is None else centre.code)
        if centre is None:
            rot = rng.uniform(-math.pi, math.pi, size=(n, 3)).astype(np.float32)
            origin = f"Gaussian of the learned codes ({g.method}), temperature {temp:g}"
        else:
            rot = np.repeat(np.asarray(centre.angles, np.float32)[None], n, axis=0)
            origin = f"around the {centre.origin}, spread of the learned codes ({g.method}) × {temp:g}"
        info = {"temperature": float(temp), "latent_method": g.method, "latent_components": g.components,
                "latent_shrinkage": float(g.shrinkage)}
        return [Job(i, new[i], rot[i], origin, dict(info)) for i in range(n)]
    if kind == "interpolate":
        from autodecoder.decoding import latent
        opts = options or LatentOptions()
        for flag, i in (("--from", opts.start), ("--to", opts.end)):
            if i is None or not 0 <= i < len(codes):
                raise UserError(f"{flag} {i}: expected a learned code's row, 0 … {len(codes) - 1}")
        path = opts.path or DEFAULT_PATH
        s = latent.interpolation_steps(opts.steps if opts.steps is not None else DEFAULT_STEPS)
        new = latent.interpolate_codes(codes[opts.start], codes[opts.end], s, path)
        rot = latent.interpolate_angles(angles[opts.start], angles[opts.end], s)
        return [Job(k, new[k], rot[k], f"{path} path from learned code {opts.start} to {opts.end}, s = {s[k]:.4f}",
                    {"interpolation_from": int(opts.start), "interpolation_to": int(opts.end),
                     "interpolation_path": path, "interpolation_s": float(s[k])})
                for k in range(len(s))]
    if kind == "reconstruct":
        return [Job(i, codes[i], angles[i], f"learned code {i}") for i in range(len(codes))]
    g = torch.Generator().manual_seed(seed)
    if kind == "generate":
        new = (torch.randn(num_sequences, codes.shape[1], generator=g) * GENERATE_CODE_STD).numpy()
        rot = ((torch.rand(num_sequences, 3, generator=g) * 2 - 1) * math.pi).numpy()
        return [Job(i, new[i], rot[i], "random code") for i in range(num_sequences)]
    if kind == "generate_filo":
        noise = (torch.randn(codes.shape, generator=g) * FILO_NOISE_STD).numpy()
        perm = torch.randperm(len(codes), generator=g).numpy()
        rot = ((torch.rand(len(codes), 3, generator=g) * 2 - 1) * math.pi).numpy()
        return [Job(i, codes[perm[i]] + noise[i], rot[i], f"learned code {perm[i]} + noise")
                for i in range(len(codes))]
    raise UserError(f"-t {kind}: unknown type; expected one of {', '.join(TYPES)}")


def run(exp: str | Path, kind: str, epoch: str | int | None = None, device: str | None = None,
        seed: int | None = None, out_dir: str | Path | None = None, progress: bool = True,
        log: Callable[[str], None] = print, exports: Exports | None = None,
        options: LatentOptions | None = None, adaptive: bool = False) -> list[Path]:
    """Decode and write the sequences of ``kind`` for the experiment ``exp``; returns the SDF files written.

    With ``exports``, each file's TIFF / PNG / mesh exports go to ``<out>/<file stem>/``.
    ``options`` are those of ``sample``, ``fit`` and ``interpolate`` (see :class:`LatentOptions`).
    ``adaptive``: adaptive extraction (exact masks and surfaces at 0 and the export threshold,
    interpolated SDF values away from them; see :mod:`autodecoder.adaptive`), else dense decoding.
    """
    exp = Path(exp)
    opts = check_options(kind, options)
    specs = specs_mod.load(exp, specs_mod.TEST)
    epoch = checkpoints.parse_epoch(epoch)
    dev = pick_device(device)
    seed = resolve_seed(seed)
    if kind == "fit":
        from autodecoder.decoding.fitting import check_specs
        check_specs(specs, str(exp / "specs.json"))
        if not Path(opts.target).is_file():
            raise UserError(f"--target {opts.target}: file not found")
    trained = checkpoints.load_trained(exp, epoch, specs["CodeLength"])
    decoder = Decoder.from_specs(specs)
    checkpoints.load_into(decoder, trained.state, trained.source)
    decoder.to(dev)
    out = Path(out_dir) if out_dir is not None else ws.output_dir(exp, kind)
    dims = tuple(specs["ReconstructionDims"])
    n_frames = specs["ReconstructionFramesPerSequence"]
    ext = sequence_suffix(specs["UseHDF5"]).lstrip(".")
    threshold = exports.threshold if exports is not None else 0.0
    tag = None
    extra: dict[str, Any] = {}
    extra["extraction"] = "adaptive" if adaptive else "dense"
    decode_kw = decode_options(specs, dev, adaptive, (threshold,))
    target: SequenceFile | None = None
    fitted = None
    if kind == "sample":
        from autodecoder.decoding import latent
        gaussian = latent.fit_gaussian(trained.codes, pca=opts.pca, source=str(trained.source))
        saved = ws.latent_gaussian_file(exp, epoch, opts.pca)
        try:
            gaussian.save(saved)
            log(f"sample: {latent.describe(gaussian)}; saved to {saved}")
        except OSError as e:
            log(f"warning: could not save the fitted distribution to {saved} ({e.strerror})")
        centre = read_centre(opts.around, trained.codes, trained.angles) if opts.around is not None else None
        tag = centre.tag if centre is not None else None
        jobs = plan(kind, trained.codes, trained.angles, specs["NumSequences"], seed, opts, gaussian, centre)
        extra["latent_distribution"] = str(saved)
    elif kind == "fit":
        from autodecoder.decoding.fitting import DEFAULT_ITERATIONS, DEFAULT_LR, fit_code
        target_path = Path(opts.target)
        iterations = opts.iterations if opts.iterations is not None else DEFAULT_ITERATIONS
        lr = opts.lr if opts.lr is not None else DEFAULT_LR
        log(f"fit: {target_path} with the decoder of {trained.source} frozen, from the mean of "
            f"{len(trained.codes)} learned codes; {iterations} iterations, lr {lr:g}, seed {seed}"
            + (f", loss clamped at ±{opts.clamp:g}" if opts.clamp is not None else ""))
        fitted = fit_code(decoder, trained.codes.astype(np.float64).mean(axis=0), specs, target_path,
                          iterations=iterations, lr=lr, seed=seed, device=dev, progress=progress, log=log,
                          clamp=opts.clamp)
        target = SequenceFile(target_path)
        dims, n_frames = target.grid_shape, target.n_frames
        tag = target_path.stem
        jobs = [Job(0, fitted.code, fitted.angles, f"fitted to {target_path.name}")]
        extra.update({"target": str(target_path.resolve()), "fit_iterations": iterations, "fit_lr": lr,
                      "fit_clamp": "as training" if opts.clamp is None else float(opts.clamp),
                      "fit_loss_start": fitted.start_loss, "fit_loss_final": fitted.final_loss,
                      "dice_threshold": threshold})
    else:
        jobs = plan(kind, trained.codes, trained.angles, specs["NumSequences"], seed, opts)
        if kind == "interpolate":
            tag = ws.interpolation_tag(opts.start, opts.end, opts.path or DEFAULT_PATH)
    log(f"{kind}: {len(jobs)} sequences of {n_frames} frames on a {dims[0]}×{dims[1]}×{dims[2]} grid "
        f"from {trained.source} (epoch {trained.epoch}), seed {seed}, device {dev} → {out}")
    written = []
    mips: list[np.ndarray] = []
    dice_frames: list[float] = []
    frames_bar = tqdm(total=len(jobs) * n_frames, unit="frame", disable=not progress, dynamic_ncols=True)
    try:
        for job in jobs:
            path = out / ws.output_name(kind, job.index, job.angles, ext, tag=tag)
            attrs = {
                "experiment": str(exp.resolve()), "type": kind,
                "epoch": -1 if trained.epoch is None else int(trained.epoch),
                "checkpoint": str(trained.source.resolve()),
                "sequence_index": job.index, "code_origin": job.origin,
                "rotation_angles": [float(a) for a in job.angles], "seed": seed,
                "frames": n_frames, "grid": list(dims), "autodecoder_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra, **job.attrs,
            }
            if kind in ("sample", "fit", "interpolate"):
                attrs["code"] = [float(c) for c in job.code]
            frames_bar.set_description(path.name)
            with SequenceWriter(path, n_frames, dims, specs["HDF5CompressionLevel"], attrs) as writer:
                for t, frame in enumerate(decode_frames(decoder, job.code, job.angles, dims, n_frames,
                                                        specs["ReconstructionSubsetSize"], dev, **decode_kw)):
                    writer.write_frame(t, frame)
                    if kind == "interpolate":
                        from autodecoder.io.pictures import mip
                        mips.append(mip(frame <= threshold))
                    if target is not None:
                        from autodecoder.evaluation.metrics import dice
                        dice_frames.append(dice(frame <= threshold, target.frame(t) <= threshold))
                    frames_bar.update(1)
                if target is not None:
                    writer.update_attrs({"dice_per_frame": dice_frames, "dice_mean": float(np.mean(dice_frames))})
            written.append(path)
            if exports is not None and exports.any():
                export_sequence(path, out, tif=exports.tif, png=exports.png, mesh=exports.mesh,
                                threshold=exports.threshold, units=exports.units, voxel_size=exports.voxel_size)
    finally:
        frames_bar.close()
        if target is not None:
            target.close()
    if kind == "interpolate":
        from autodecoder.io.pictures import contact_sheet
        sheet = ws.interpolation_sheet(out, tag)
        contact_sheet(mips, sheet, columns=n_frames)
        log(f"interpolate: contact sheet (rows: {len(jobs)} steps from code {opts.start} to {opts.end}; "
            f"columns: {n_frames} frames; MIP of sdf <= {threshold:g}) → {sheet}")
    if kind == "fit":
        code_file = ws.fit_code_file(out, tag)
        _write_fit_code(code_file, fitted, dice_frames, extra, written[0])
        log("fit: Dice (sdf <= {:g}) against the target per frame: {}".format(
            threshold, " ".join(f"{d:.3f}" for d in dice_frames)))
        log(f"fit: mean Dice {np.mean(dice_frames):.4f}; code and angles → {code_file}; "
            f"reconstruction → {written[0]}")
    log(f"wrote {len(written)} files to {out}")
    return written


def _write_fit_code(path: Path, fitted: Any, dice_frames: list[float], info: dict[str, Any], rec: Path) -> None:
    """``fit_<stem>_code.mat``: ``lat_vecs`` (1, CodeLength) and ``rot_ang`` (1, 3) as in the original's tables,
    plus the scores (readable by ``--around`` and by :func:`autodecoder.io.read_table`)."""
    import scipy.io
    mdict = {"lat_vecs": np.asarray(fitted.code, np.float32).reshape(1, -1),
             "rot_ang": np.asarray(fitted.angles, np.float32).reshape(1, 3),
             "dice_per_frame": np.asarray(dice_frames, np.float64),
             "dice_mean": float(np.mean(dice_frames)),
             "loss_per_iteration": np.asarray(fitted.losses, np.float64),
             "reconstruction": rec.name,
             **{k: v for k, v in info.items() if isinstance(v, (int, float, str))}}
    with ws.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            scipy.io.savemat(fh, mdict)
