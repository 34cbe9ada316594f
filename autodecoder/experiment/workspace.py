"""The experiment folder: every path name the project reads or writes, in one place.

An experiment folder holds ``specs.json`` and, after training (original layout)::

    model_parameters/eNNNN_model.pth     {"epoch", "model_state_dict"} (keys "module."-prefixed)
    latent_codes/eNNNN_lat_vecs.mat      lat_vecs, float32 (NumSequences, CodeLength)
    latent_codes/eNNNN_rot_angs.mat      rot_ang, float32 (NumSequences, 3)
    YYYY-MM-DD_HHh-MMm-SSs_train_log.txt

plus what this project adds: ``model_parameters/latest.pth`` (the full training
state, for resuming), ``model_parameters/resolved_specs.json`` and ``loss.png``;
``latent_codes/<eNNNN_|latest_|>latent_<prior>[_pcaK].npz`` (the prior fitted to
a code table by ``test.py -t sample --prior``: ``latent_gaussian``, ``latent_gmm``
or ``latent_kde``); and the output folders of the
added types, ``OUT_sample``, ``OUT_fit`` and ``OUT_interpolate``, beside the
original's ``OUT_reconstruct`` and ``OUT_randomgen``.
The no-epoch names (``model.pth``, ``lat_vecs.mat``, ``rot_angs.mat``) are the
layout of the authors' distributed pre-trained models.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from autodecoder.experiment.errors import UserError

MODEL_DIR = "model_parameters"
CODES_DIR = "latent_codes"
LATEST = "latest"
LATEST_FILE = "latest.pth"
RESOLVED_SPECS = "resolved_specs.json"
LOSS_PLOT = "loss.png"
OUT_DIRS = {"reconstruct": "OUT_reconstruct", "generate": "OUT_randomgen", "generate_filo": "OUT_randomgen",
            "sample": "OUT_sample", "fit": "OUT_fit", "interpolate": "OUT_interpolate"}
OUT_PREFIX = {"reconstruct": "rec", "generate": "gen", "generate_filo": "gen",
              "sample": "smp", "fit": "fit", "interpolate": "int"}
LATENT_PREFIX = "latent_"

_EPOCH_FILE = re.compile(r"^e(\d{4,})_model\.pth$")


def _prefix(epoch: int | None) -> str:
    return "" if epoch is None else f"e{epoch:04d}_"


def model_file(exp: Path, epoch: int | None) -> Path:
    return Path(exp) / MODEL_DIR / f"{_prefix(epoch)}model.pth"


def codes_file(exp: Path, epoch: int | None) -> Path:
    return Path(exp) / CODES_DIR / f"{_prefix(epoch)}lat_vecs.mat"


def angles_file(exp: Path, epoch: int | None) -> Path:
    return Path(exp) / CODES_DIR / f"{_prefix(epoch)}rot_angs.mat"


def latent_prior_file(exp: Path, epoch: int | str | None, prior: str = "gaussian", pca: int | None = None) -> Path:
    """The prior fitted to a code table, next to it: ``latent_codes/<eNNNN_|latest_|>latent_<prior>[_pcaK].npz``."""
    prefix = f"{LATEST}_" if epoch == LATEST else _prefix(epoch)
    tail = "" if pca is None else f"_pca{int(pca)}"
    return Path(exp) / CODES_DIR / f"{prefix}{LATENT_PREFIX}{prior}{tail}.npz"


def latest_file(exp: Path) -> Path:
    return Path(exp) / MODEL_DIR / LATEST_FILE


def resolved_specs_file(exp: Path) -> Path:
    return Path(exp) / MODEL_DIR / RESOLVED_SPECS


def loss_plot_file(exp: Path) -> Path:
    return Path(exp) / LOSS_PLOT


def log_file(exp: Path, start: float | None = None) -> Path:
    """The original's text log name, ``YYYY-MM-DD_HHh-MMm-SSs_train_log.txt``."""
    stamp = time.strftime("%Y-%m-%d_%Hh-%Mm-%Ss", time.localtime(start))
    return Path(exp) / f"{stamp}_train_log.txt"


def data_folder(specs: dict, exp: Path) -> Path:
    """``DataSource`` as given when absolute or found from the working folder (as the original
    reads it), else relative to the experiment folder."""
    src = Path(specs["DataSource"])
    if src.is_absolute() or src.is_dir():
        return src
    alt = Path(exp) / src
    if alt.is_dir():
        return alt
    raise UserError(f"{Path(exp) / 'specs.json'}: key \"DataSource\": folder \"{src}\" not found "
                    f"(looked in {Path.cwd()} and in {exp})")


def output_dir(exp: Path, kind: str) -> Path:
    return Path(exp) / OUT_DIRS[kind]


def output_name(kind: str, index: int, angles, ext: str, tag: str | None = None) -> str:
    """``rec_seq_SSS_rot_A_B_C.h5`` (or ``gen_…``), angles with ``%.3f`` as the original names them.

    With ``tag`` (the new types): ``<prefix>_<tag>_seq_SSS_rot_A_B_C.<ext>``.
    """
    a = "_".join(f"{float(v):.3f}" for v in angles)
    mid = f"_{tag}" if tag else ""
    return f"{OUT_PREFIX[kind]}{mid}_seq_{index:03d}_rot_{a}.{ext}"


def interpolation_tag(start: int, end: int, path: str) -> str:
    """``SSS_to_EEE_<path>``: which two learned codes an interpolation joins, and how."""
    return f"{start:03d}_to_{end:03d}_{path}"


def interpolation_sheet(out: Path, tag: str) -> Path:
    """The contact sheet of an interpolation (steps × frames of MIPs): ``int_<tag>_sheet.png``."""
    return Path(out) / f"{OUT_PREFIX['interpolate']}_{tag}_sheet.png"


def fit_code_file(out: Path, stem: str) -> Path:
    """The code (and angles) fitted to the target ``<stem>.h5``: ``fit_<stem>_code.mat``."""
    return Path(out) / f"{OUT_PREFIX['fit']}_{stem}_code.mat"


def available_epochs(exp: Path) -> list[int]:
    """Epochs with an ``eNNNN_model.pth`` checkpoint, ascending."""
    d = Path(exp) / MODEL_DIR
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir() if (m := _EPOCH_FILE.match(p.name)))


def describe_available(exp: Path) -> str:
    """What checkpoints an experiment has, for error messages."""
    parts = [str(e) for e in available_epochs(exp)]
    if latest_file(exp).is_file():
        parts.append(LATEST)
    if model_file(exp, None).is_file():
        parts.append("no -e (model.pth)")
    return ", ".join(parts) if parts else "none (train the experiment first)"
