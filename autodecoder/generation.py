"""``test.py -t reconstruct | generate | generate_filo``: which codes and rotations to decode (SPEC §5).

* ``reconstruct``: every row of the learned code table with its learned angles.
* ``generate``: ``NumSequences`` new codes drawn N(0, 0.001²) per component,
  angles U(-π, π).
* ``generate_filo``: the learned codes in shuffled row order plus N(0, 1e-4²)
  noise (drawn before the shuffle), angles U(-π, π).

Each sequence is decoded frame by frame with :func:`autodecoder.grid.decode_frames`
and written as it is decoded, with its provenance in the file's attributes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from . import __version__, checkpoints, specs as specs_mod, workspace as ws
from .errors import UserError
from .exports import export_sequence
from .grid import decode_frames
from .io import SequenceWriter, sequence_suffix
from .model import Decoder
from .runtime import pick_device, resolve_seed

TYPES = ("reconstruct", "generate", "generate_filo")
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


def plan(kind: str, codes: np.ndarray, angles: np.ndarray, num_sequences: int, seed: int) -> list[Job]:
    """The sequences that ``kind`` decodes, drawn reproducibly from ``seed``."""
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
        log: Callable[[str], None] = print, exports: Exports | None = None) -> list[Path]:
    """Decode and write the sequences of ``kind`` for the experiment ``exp``; returns the SDF files written.

    With ``exports``, each file's TIFF / PNG / mesh exports go to ``<out>/<file stem>/``.
    """
    exp = Path(exp)
    if kind not in TYPES:
        raise UserError(f"-t {kind}: unknown type; expected one of {', '.join(TYPES)}")
    specs = specs_mod.load(exp, specs_mod.TEST)
    epoch = checkpoints.parse_epoch(epoch)
    dev = pick_device(device)
    seed = resolve_seed(seed)
    trained = checkpoints.load_trained(exp, epoch, specs["CodeLength"])
    decoder = Decoder.from_specs(specs)
    checkpoints.load_into(decoder, trained.state, trained.source)
    decoder.to(dev)
    jobs = plan(kind, trained.codes, trained.angles, specs["NumSequences"], seed)
    out = Path(out_dir) if out_dir is not None else ws.output_dir(exp, kind)
    dims = tuple(specs["ReconstructionDims"])
    n_frames = specs["ReconstructionFramesPerSequence"]
    ext = sequence_suffix(specs["UseHDF5"]).lstrip(".")
    log(f"{kind}: {len(jobs)} sequences of {n_frames} frames on a {dims[0]}×{dims[1]}×{dims[2]} grid "
        f"from {trained.source} (epoch {trained.epoch}), seed {seed}, device {dev} → {out}")
    written = []
    frames_bar = tqdm(total=len(jobs) * n_frames, unit="frame", disable=not progress, dynamic_ncols=True)
    for job in jobs:
        path = out / ws.output_name(kind, job.index, job.angles, ext)
        attrs = {
            "experiment": str(exp.resolve()), "type": kind,
            "epoch": -1 if trained.epoch is None else int(trained.epoch),
            "checkpoint": str(trained.source.resolve()),
            "sequence_index": job.index, "code_origin": job.origin,
            "rotation_angles": [float(a) for a in job.angles], "seed": seed,
            "frames": n_frames, "grid": list(dims), "autodecoder_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        frames_bar.set_description(path.name)
        with SequenceWriter(path, n_frames, dims, specs["HDF5CompressionLevel"], attrs) as writer:
            for t, frame in enumerate(decode_frames(decoder, job.code, job.angles, dims, n_frames,
                                                    specs["ReconstructionSubsetSize"], dev)):
                writer.write_frame(t, frame)
                frames_bar.update(1)
        written.append(path)
        if exports is not None and exports.any():
            export_sequence(path, out, tif=exports.tif, png=exports.png, mesh=exports.mesh,
                            threshold=exports.threshold, units=exports.units, voxel_size=exports.voxel_size)
    frames_bar.close()
    log(f"wrote {len(written)} files to {out}")
    return written
