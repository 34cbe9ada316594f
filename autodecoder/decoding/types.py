"""Which codes and rotations each type of ``test.py -t`` decodes (docs/method.md §5).

The original's types, unchanged:

* ``reconstruct``: every row of the learned code table with its learned angles.
* ``generate``: ``NumSequences`` new codes drawn N(0, 0.001²) per component, angles U(-π, π).
* ``generate_filo``: the learned codes in shuffled row order plus N(0, 1e-4²) noise (drawn before
  the shuffle), angles U(-π, π).

Added (see :mod:`autodecoder.decoding.latent`):

* ``sample``: ``--num`` codes from the prior ``--prior`` fitted to the learned codes (default the
  Gaussian; :mod:`autodecoder.decoding.priors`; ``--pca K`` components, spread scaled by
  ``--temperature``), rotations uniform on SO(3) (:func:`autodecoder.decoding.latent.uniform_rotations`);
  with ``--around CODE`` (Gaussian only) the Gaussian is centred on that code (a file written by
  ``fit``, or a row of the learned table) and its angles are kept.
* ``interpolate``: ``--steps`` sequences along the path (``--path``) from learned code ``--from``
  to ``--to``, rotations along the SO(3) geodesic.

``fit`` has no plan: its one job is the code it fits (:mod:`autodecoder.decoding.fitting`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import torch

from autodecoder.decoding import latent, priors
from autodecoder.decoding.options import (DEFAULT_PATH, DEFAULT_PRIOR, DEFAULT_STEPS, DEFAULT_TEMPERATURE, TYPES,
                                          LatentOptions)
from autodecoder.experiment.errors import UserError
from autodecoder.io.sequences import read_table

GENERATE_CODE_STD = 0.001
FILO_NOISE_STD = 1e-4


@dataclass
class Job:
    """One output sequence: its index in the output names, code (CodeLength,), angles (3,), and origin."""

    index: int
    code: np.ndarray
    angles: np.ndarray
    origin: str
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Centre:
    """The code that ``sample --around`` varies: its code, its angles and where it came from."""

    code: np.ndarray
    angles: np.ndarray
    origin: str
    tag: str


def _read_code_file(path: Path, value: str, length: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(codes (k, length), angles (k, 3) or None) of a ``.mat`` (``lat_vecs``/``rot_ang``) or ``.npz``/``.npy`` file."""
    if path.suffix.lower() == ".mat":
        code = read_table(path, "lat_vecs", length)
        has_rot = "rot_ang" in [w[0] for w in scipy.io.whosmat(path)]
        return code, read_table(path, "rot_ang", 3) if has_rot else None
    if path.suffix.lower() not in (".npz", ".npy"):
        raise UserError(f"--around {value}: expected a .mat, .npz or .npy code file, or a learned code's row number")
    try:
        data = np.load(path, allow_pickle=False)
        rot = None
        if isinstance(data, np.lib.npyio.NpzFile):
            key = next((k for k in ("lat_vecs", "code") if k in data.files), None)
            if key is None:
                raise UserError(f"--around {value}: no \"lat_vecs\" or \"code\" array in the file")
            rot = np.asarray(data["rot_ang"], np.float32).reshape(-1, 3) if "rot_ang" in data.files else None
            data = data[key]
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"--around {value}: cannot read ({e})") from None
    if np.size(data) % length:
        raise UserError(f"--around {value}: expected a code of length {length} (CodeLength)")
    return np.asarray(data, dtype=np.float32).reshape(-1, length), rot


def read_centre(value: str, codes: np.ndarray, angles: np.ndarray) -> Centre:
    """``--around``: a code file (``fit_<stem>_code.mat`` with ``lat_vecs`` and ``rot_ang``, or
    ``.npz``/``.npy`` holding one code) or the row number of a learned code."""
    path = Path(value)
    if not path.exists() and value.isdigit():
        i = int(value)
        if i >= len(codes):
            raise UserError(f"--around {value}: no learned code {i} (the table has rows 0 … {len(codes) - 1})")
        return Centre(codes[i].copy(), angles[i].copy(), f"learned code {i}", f"around_{i:03d}")
    if not path.is_file():
        raise UserError(f"--around {value}: no such code file (nor a learned code's row number)")
    code, rot = _read_code_file(path, value, codes.shape[1])
    if len(code) != 1:
        raise UserError(f"--around {value}: holds {len(code)} codes; expected one")
    ang = rot[0] if rot is not None and len(rot) == 1 else np.zeros(3, np.float32)
    return Centre(code[0], ang.astype(np.float32), f"code of {path.name}", f"around_{path.stem}")


def sample_jobs(prior: priors.Prior, n: int, temperature: float, seed: int,
                centre: Centre | None = None) -> list[Job]:
    """``n`` codes drawn from ``prior`` with rotations uniform on SO(3), drawn after the codes from one
    generator seeded with ``seed``; centred on ``centre`` when given (Gaussian only), whose angles are kept."""
    rng = np.random.default_rng(seed)
    new = prior.draw(n, temperature, rng, center=None if centre is None else centre.code)
    info = {"temperature": float(temperature), **prior.attrs()}
    method = f" ({info['latent_method']})" if "latent_method" in info else ""
    if centre is None:
        rot, info["orientation"] = latent.uniform_rotations(n, rng), latent.ORIENTATION
        origin = f"{prior.name} prior of the learned codes{method}, temperature {temperature:g}"
    else:
        rot = np.repeat(np.asarray(centre.angles, np.float32)[None], n, axis=0)
        info["orientation"] = f"kept from the {centre.origin}"
        origin = f"around the {centre.origin}, spread of the learned codes{method} × {temperature:g}"
    return [Job(i, new[i], rot[i], origin, dict(info)) for i in range(n)]


def interpolate_jobs(codes: np.ndarray, angles: np.ndarray, start: int, end: int, steps: int, path: str) -> list[Job]:
    """``steps`` sequences from learned code ``start`` to ``end`` (both included) along ``path``."""
    for flag, i in (("--from", start), ("--to", end)):
        if i is None or not 0 <= i < len(codes):
            raise UserError(f"{flag} {i}: expected a learned code's row, 0 … {len(codes) - 1}")
    s = latent.interpolation_steps(steps)
    new = latent.interpolate_codes(codes[start], codes[end], s, path)
    rot = latent.interpolate_angles(angles[start], angles[end], s)
    return [Job(k, new[k], rot[k], f"{path} path from learned code {start} to {end}, s = {s[k]:.4f}",
                {"interpolation_from": int(start), "interpolation_to": int(end), "interpolation_path": path,
                 "interpolation_s": float(s[k])}) for k in range(len(s))]


def original_jobs(kind: str, codes: np.ndarray, angles: np.ndarray, num_sequences: int, seed: int) -> list[Job]:
    """The jobs of the original's types, drawn from torch's generator as the original draws them."""
    if kind == "reconstruct":
        return [Job(i, codes[i], angles[i], f"learned code {i}") for i in range(len(codes))]
    g = torch.Generator().manual_seed(seed)
    if kind == "generate":
        new = (torch.randn(num_sequences, codes.shape[1], generator=g) * GENERATE_CODE_STD).numpy()
        rot = ((torch.rand(num_sequences, 3, generator=g) * 2 - 1) * math.pi).numpy()
        return [Job(i, new[i], rot[i], "random code") for i in range(num_sequences)]
    noise = (torch.randn(codes.shape, generator=g) * FILO_NOISE_STD).numpy()
    perm = torch.randperm(len(codes), generator=g).numpy()
    rot = ((torch.rand(len(codes), 3, generator=g) * 2 - 1) * math.pi).numpy()
    return [Job(i, codes[perm[i]] + noise[i], rot[i], f"learned code {perm[i]} + noise") for i in range(len(codes))]


def plan(kind: str, codes: np.ndarray, angles: np.ndarray, num_sequences: int, seed: int,
         options: LatentOptions | None = None, prior: priors.Prior | None = None,
         centre: Centre | None = None) -> list[Job]:
    """The sequences that ``kind`` decodes, drawn reproducibly from ``seed``.

    ``sample`` uses ``prior`` (when not given, ``--prior`` fitted to ``codes`` with the fixed fitting
    seed 0, so that one table always gives one prior) and ``centre`` (``--around``).
    """
    opts = options or LatentOptions()
    if kind == "sample":
        g = prior if prior is not None else priors.fit_prior(opts.prior or DEFAULT_PRIOR, codes, pca=opts.pca)
        n = opts.num if opts.num is not None else num_sequences
        temp = opts.temperature if opts.temperature is not None else DEFAULT_TEMPERATURE
        return sample_jobs(g, n, temp, seed, centre)
    if kind == "interpolate":
        return interpolate_jobs(codes, angles, opts.start, opts.end,
                                opts.steps if opts.steps is not None else DEFAULT_STEPS, opts.path or DEFAULT_PATH)
    if kind in ("reconstruct", "generate", "generate_filo"):
        return original_jobs(kind, codes, angles, num_sequences, seed)
    raise UserError(f"-t {kind}: unknown type; expected one of {', '.join(TYPES)} (fit is not planned)")
