"""Where and how computations run: device choice and seeds."""

from __future__ import annotations

import secrets

import torch

from autodecoder.experiment.errors import UserError


def pick_device(name: str | None = None) -> torch.device:
    """``cuda`` when a GPU is present, else ``cpu``; ``name`` ("cpu", "cuda", "cuda:1") overrides."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: expected cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is available on this machine (use --device cpu)")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {name}: expected cpu, cuda or cuda:N")
    return device


def resolve_seed(seed: int | None) -> int:
    """``seed`` itself, or a fresh random one (to be recorded) when it is ``None``."""
    if seed is None:
        return secrets.randbelow(2**31)
    if seed < 0:
        raise UserError(f"--seed {seed}: expected a non-negative integer")
    return int(seed)
