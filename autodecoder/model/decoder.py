"""The decoder: a DeepSDF-style MLP with sine activations (docs/method.md §3).

Input rows are ``[code (CodeLength), x, y, z, t]``; the output is one SDF value
per row. Layer names (``lin0`` … ``lin{L-1}``, ``bn{l}`` for LayerNorms,
``weight_g``/``weight_v`` for weight-normalised layers) follow the original so
its checkpoints load unchanged.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

#: Frequency factor of the sine activations, ``sin(OMEGA * x)``.
OMEGA = 30.0
#: Dropout probability on the code part of the input with ``latent_dropout``.
LATENT_DROPOUT_P = 0.2
#: Number of non-code inputs: x, y, z, t.
N_COORDS = 4


def layer_widths(code_length: int, net: Mapping[str, Any]) -> list[tuple[int, int]]:
    """``(in_features, out_features)`` of every layer for the options ``net``.

    Raises ``ValueError`` when an option combination gives a layer no width.
    """
    d0 = code_length + N_COORDS
    dims = [d0] + list(net["dims"]) + [1]
    n_layers = len(dims) - 1
    latent_in = set(net.get("latent_in") or [])
    if 0 in latent_in:
        raise ValueError("latent_in cannot hold layer 0 (it already reads the input)")
    widths = []
    for l in range(n_layers):
        if l + 1 in latent_in:
            out = dims[l + 1] - d0
            why = f"dims[{l}] = {dims[l + 1]} must exceed CodeLength + 4 = {d0}, because layer {l + 1} is in latent_in"
        elif net.get("xyz_in_all") and l != n_layers - 1:
            out = dims[l + 1] - N_COORDS
            why = f"dims[{l}] = {dims[l + 1]} must exceed 4 with xyz_in_all"
        else:
            out = dims[l + 1]
            why = ""
        if out < 1:
            raise ValueError(why)
        widths.append((dims[l], out))
    return widths


class WeightNormLinear(nn.Module):
    """``nn.Linear`` with weight = g · v / ‖v‖ (norm per output row).

    Parameter names ``weight_g`` (out, 1), ``weight_v`` (out, in) and ``bias``
    match the checkpoints of ``torch.nn.utils.weight_norm`` used by the original.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        lin = nn.Linear(in_features, out_features)
        self.weight_v = nn.Parameter(lin.weight.detach().clone())
        self.weight_g = nn.Parameter(lin.weight.detach().norm(dim=1, keepdim=True))
        self.bias = nn.Parameter(lin.bias.detach().clone())

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class Decoder(nn.Module):
    """``f(code, x, y, z, t) -> sdf`` with every ``NetworkSpecs`` option of the original.

    Args:
        code_length: length of the latent code.
        dims: hidden-layer widths (the ``NetworkSpecs.dims`` list).
        dropout: indices of hidden layers followed by dropout (training only).
        dropout_prob: that dropout's probability.
        norm_layers: hidden layers followed by LayerNorm, or weight-normalised
            instead when ``weight_norm``.
        latent_in: layers that get the whole input (code and xyzt) appended.
        weight_norm: see ``norm_layers``.
        xyz_in_all: append ``xyzt`` to the input of every other layer.
        use_tanh: ``tanh`` on the output.
        latent_dropout: dropout (p = 0.2) on the code part of the input while training.
        use_sine: ``sin(30 x)`` activations (default) or ReLU.
    """

    def __init__(self, code_length: int, dims: list[int], dropout: list[int] | None = None,
                 dropout_prob: float = 0.0, norm_layers: list[int] | None = None,
                 latent_in: list[int] | None = None, weight_norm: bool = False,
                 xyz_in_all: bool = False, use_tanh: bool = False, latent_dropout: bool = False,
                 use_sine: bool = True) -> None:
        super().__init__()
        self.code_length = code_length
        self.options = dict(dims=list(dims), dropout=list(dropout or []), dropout_prob=dropout_prob,
                            norm_layers=list(norm_layers or []), latent_in=list(latent_in or []),
                            weight_norm=weight_norm, xyz_in_all=xyz_in_all, use_tanh=use_tanh,
                            latent_dropout=latent_dropout, use_sine=use_sine)
        widths = layer_widths(code_length, self.options)
        self.num_layers = len(widths)
        self.latent_in = set(self.options["latent_in"])
        self.norm_layers = set(self.options["norm_layers"])
        self.dropout = set(self.options["dropout"])
        self.dropout_prob = dropout_prob
        self.xyz_in_all = xyz_in_all
        self.use_tanh = use_tanh
        self.latent_dropout = latent_dropout
        self.use_sine = use_sine
        self.weight_norm = weight_norm
        last = self.num_layers - 1
        for l, (n_in, n_out) in enumerate(widths):
            if weight_norm and l in self.norm_layers:
                setattr(self, f"lin{l}", WeightNormLinear(n_in, n_out))
            else:
                setattr(self, f"lin{l}", nn.Linear(n_in, n_out))
            if l != last and l in self.norm_layers and not weight_norm:
                setattr(self, f"bn{l}", nn.LayerNorm(n_out))
        if use_sine:
            self._sine_init()

    @classmethod
    def from_specs(cls, specs: Mapping[str, Any]) -> "Decoder":
        """Build the decoder of resolved specs (``CodeLength`` and ``NetworkSpecs``)."""
        return cls(specs["CodeLength"], **specs["NetworkSpecs"])

    @torch.no_grad()
    def _sine_init(self) -> None:
        # SIREN initialisation as the original applies it: every module with a
        # plain weight tensor (LayerNorm gains included), then the first layer.
        for m in self.modules():
            w = getattr(m, "weight", None)
            if isinstance(w, nn.Parameter):
                bound = math.sqrt(6.0 / w.size(-1)) / OMEGA
                w.uniform_(-bound, bound)
        w0 = self.lin0.weight
        if isinstance(w0, nn.Parameter):
            w0.uniform_(-1.0 / w0.size(-1), 1.0 / w0.size(-1))

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(OMEGA * x) if self.use_sine else F.relu(x)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` (P, CodeLength + 4) rows ``[code, x, y, z, t]`` → SDF (P, 1)."""
        xyzt = inputs[:, -N_COORDS:]
        if self.latent_dropout and self.code_length > 0:
            code = F.dropout(inputs[:, :-N_COORDS], p=LATENT_DROPOUT_P, training=self.training)
            x = torch.cat([code, xyzt], 1)
        else:
            x = inputs
        last = self.num_layers - 1
        for l in range(self.num_layers):
            if l in self.latent_in:
                x = torch.cat([x, inputs], 1)
            elif l > 0 and self.xyz_in_all:
                x = torch.cat([x, xyzt], 1)
            x = getattr(self, f"lin{l}")(x)
            if l == last:
                if self.use_tanh:
                    x = torch.tanh(x)
            else:
                if l in self.norm_layers and not self.weight_norm:
                    x = getattr(self, f"bn{l}")(x)
                x = self._activate(x)
                if l in self.dropout:
                    x = F.dropout(x, p=self.dropout_prob, training=self.training)
        return x


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``module.`` prefix that ``DataParallel`` checkpoints carry."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def add_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add the ``module.`` prefix, so the original's code loads the state dict."""
    return {k if k.startswith("module.") else f"module.{k}": v for k, v in state.items()}

