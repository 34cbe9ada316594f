"""Saving and loading trained models: the original's layout, and the full training state.

* Original layout (per checkpoint epoch, see :mod:`autodecoder.workspace`):
  the decoder state dict with ``module.``-prefixed keys, and the code and
  angle tables as MAT files. Loadable by the original's code, and the
  original's (and the authors' pre-trained) checkpoints load here.
* ``latest.pth``: everything needed to resume exactly (decoder, tables, both
  optimisers, epoch and position in the epoch, random-number states, loss
  history, specs), written atomically.

All reads use ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autodecoder.experiment import workspace as ws
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import atomic_path
from autodecoder.io.sequences import read_table, write_table
from autodecoder.model.decoder import Decoder, add_module_prefix, strip_module_prefix

LATEST_FORMAT = "autodecoder-latest/1"


def save_epoch(exp: Path, epoch: int, decoder: Decoder, codes: torch.Tensor, angles: torch.Tensor) -> None:
    """Write the original's three checkpoint files for ``epoch``."""
    state = {k: v.detach().cpu() for k, v in add_module_prefix(decoder.state_dict()).items()}
    with atomic_path(ws.model_file(exp, epoch)) as tmp:
        torch.save({"epoch": epoch, "model_state_dict": state}, tmp)
    write_table(ws.codes_file(exp, epoch), "lat_vecs", codes.detach().cpu().numpy())
    write_table(ws.angles_file(exp, epoch), "rot_ang", angles.detach().cpu().numpy())


def save_latest(exp: Path, state: dict[str, Any]) -> None:
    """Write the full training state to ``model_parameters/latest.pth`` (atomically)."""
    with atomic_path(ws.latest_file(exp)) as tmp:
        torch.save({"format": LATEST_FORMAT, **state}, tmp)


def torch_load(path: Path) -> Any:
    """``torch.load`` of plain tensors only (``weights_only``): a file holding other Python objects is
    refused without running any of its code, and without PyTorch's advice to load it unsafely."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        blocked = re.search(r"unsupported GLOBAL ([\w.]+)", str(e))
        if blocked is None:  # torch's own text would advise loading it unsafely: not relayed
            raise UserError(f"{path}: not a readable PyTorch checkpoint (damaged, or not written by torch.save)") \
                from None
        what = f" ({blocked.group(1)})" if blocked else ""
        raise UserError(f"{path}: holds Python objects{what} besides tensors; it is not a checkpoint of this "
                        "project or of the original, and is not loaded (its code is never run)") from None
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({first})") from None


def load_latest(exp: Path) -> dict[str, Any]:
    """Read ``latest.pth``; a clear error when it is missing or not this project's format."""
    path = ws.latest_file(exp)
    if not path.is_file():
        raise UserError(f"{path}: no latest checkpoint (available: {ws.describe_available(exp)})")
    return load_format(path, LATEST_FORMAT, "a training-state checkpoint of this project")


def load_format(path: Path, fmt: str, what: str) -> dict[str, Any]:
    """:func:`torch_load` of a dict whose ``"format"`` is ``fmt``; else one line: ``<path>: not <what>``."""
    state = torch_load(path)
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise UserError(f"{path}: not {what}")
    return state


def load_model_state(path: Path) -> tuple[dict[str, torch.Tensor], int | None]:
    """Read an original-layout ``*_model.pth`` → (state dict without prefix, its epoch)."""
    ck = torch_load(path)
    if not isinstance(ck, dict) or "model_state_dict" not in ck:
        raise UserError(f"{path}: no \"model_state_dict\" in the checkpoint")
    return strip_module_prefix(ck["model_state_dict"]), ck.get("epoch")


def load_into(decoder: Decoder, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load ``state`` into ``decoder``, explaining a mismatch with the specs."""
    own = decoder.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing[:4]))
        if extra:
            parts.append("unexpected " + ", ".join(extra[:4]))
        if shapes:
            parts.append("shape of " + ", ".join(shapes[:3]))
        raise UserError(f"{source}: does not match \"CodeLength\"/\"NetworkSpecs\" of specs.json ("
                        + "; ".join(parts) + ")")
    decoder.load_state_dict(state)


@dataclass
class Checkpoint:
    """A trained model on disk: decoder weights and the code and angle tables.

    Attributes:
        state: decoder state dict (no ``module.`` prefix).
        codes: float32 (rows, CodeLength).
        angles: float32 (rows, 3), Euler angles in radians.
        epoch: the epoch it was saved at, if known.
        source: the file the weights came from.
    """

    state: dict[str, torch.Tensor]
    codes: np.ndarray
    angles: np.ndarray
    epoch: int | None
    source: Path


def parse_epoch(value: str | int | None) -> int | str | None:
    """``-e`` argument: ``None`` (no-epoch layout), ``"latest"`` or an epoch number."""
    if value is None or value == ws.LATEST:
        return value
    try:
        epoch = int(value)
    except (TypeError, ValueError):
        raise UserError(f"-e {value}: expected an epoch number or \"latest\"") from None
    if epoch < 0:
        raise UserError(f"-e {value}: expected an epoch number >= 0 or \"latest\"")
    return epoch


def load_trained(exp: Path, epoch: int | str | None, code_length: int) -> Checkpoint:
    """Load the model of ``epoch`` (see :func:`parse_epoch`), listing what exists when it is missing."""
    exp = Path(exp)
    if epoch == ws.LATEST:
        st = load_latest(exp)
        return Checkpoint(st["decoder"], st["codes"].numpy(), st["angles"].numpy(),
                            st["completed_epoch"], ws.latest_file(exp))
    model_path = ws.model_file(exp, epoch)
    if not model_path.is_file():
        what = "no-epoch model (model.pth)" if epoch is None else f"epoch {epoch}"
        raise UserError(f"{model_path}: {what} not found; available: {ws.describe_available(exp)}")
    state, saved_epoch = load_model_state(model_path)
    codes = read_table(ws.codes_file(exp, epoch), "lat_vecs", code_length)
    angles = read_table(ws.angles_file(exp, epoch), "rot_ang", 3)
    if len(codes) != len(angles):
        raise UserError(f"{ws.angles_file(exp, epoch)}: {len(angles)} rows of angles but "
                        f"{ws.codes_file(exp, epoch).name} has {len(codes)} codes")
    return Checkpoint(state, codes, angles, saved_epoch if saved_epoch is not None else epoch, model_path)
