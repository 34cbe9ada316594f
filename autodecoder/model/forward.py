"""The forward pass of the decoder on points of whole frames, with the per-frame terms computed once.

Same parameters, same state dict and same mathematics as ``Decoder.forward`` on rows
``[code, x, y, z, t]`` (docs/method.md §3); only the order of the floating-point operations differs
(≤ 1e-5 on SDF values). Two rewrites:

1. **Per-frame terms once per frame.** A layer that reads the code (``lin0`` and every
   ``latent_in`` layer) computes ``W·[h, code, x, y, z, t] + b``. With ``W`` split into column
   blocks, ``W_code·code + W_t·t + b`` is the same for every point of a frame (time too is constant
   within a frame): :func:`frame_biases` computes it once per frame as the layer's bias, and per
   point only ``W_h·h + W_xyz·xyz`` remains. No code is ever copied to every point.
2. **The sine factor in the weights.** ``sin(30·(W x + b)) = sin((30 W) x + 30 b)``: the factor is
   applied to the small weight matrices instead of to every activation (not on layers followed by
   a LayerNorm).

:func:`forward_points` is the one forward pass of training (differentiable, several frames) and of
decoding (with a :class:`Workspace`: preallocated arrays, sine in place, no autograd). Where the
rewrite does not hold exactly the callers use ``Decoder.forward`` (:func:`fast_path_applies`):
while training with ``latent_dropout`` or hidden-layer dropout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autodecoder.model.decoder import N_COORDS, OMEGA, Decoder


@dataclass
class SplitLayer:
    """One layer, its weight split by input blocks (already multiplied by the sine factor when ``folded``).

    Attributes:
        w: weights on the per-point inputs ``[h, x, y, z]`` (``[x, y, z]`` for layer 0), (out, in).
        n_h: width of the previous layer's features in ``w`` (0 for layer 0).
        has_xyz: whether the last three columns of ``w`` read ``x, y, z``.
        w_code: (out, CodeLength) weights on the code, or None.
        w_t: (out,) weights on the time, or None.
        bias: (out,).
        folded: the sine factor is folded into ``w``, ``w_code``, ``w_t`` and ``bias``.
        norm: the LayerNorm after this layer, or None.
        last: the output layer.
    """

    w: torch.Tensor
    n_h: int
    has_xyz: bool
    w_code: torch.Tensor | None
    w_t: torch.Tensor | None
    bias: torch.Tensor
    folded: bool
    norm: nn.Module | None
    last: bool


def fast_path_applies(decoder: Decoder, training: bool) -> bool:
    """True when :func:`forward_points` computes exactly ``Decoder.forward`` (see the module notes):
    dropout draws one mask per point's copy of the code (``latent_dropout``) or per layer for the
    whole batch, which chunked frames would draw in another order."""
    if not training:
        return True
    return not (decoder.latent_dropout or (decoder.dropout and decoder.dropout_prob > 0))


def _blocks(decoder: Decoder, l: int, w: torch.Tensor) -> tuple:
    """Column blocks ``(w_h, w_code, w_xyz, w_t)`` of layer ``l``'s weight (None where absent)."""
    c = decoder.code_length
    if l == 0:
        return None, w[:, :c], w[:, c:c + 3], w[:, c + 3]
    if l in decoder.latent_in:
        h = w.shape[1] - c - N_COORDS
        return w[:, :h], w[:, h:h + c], w[:, h + c:h + c + 3], w[:, h + c + 3]
    if decoder.xyz_in_all:
        h = w.shape[1] - N_COORDS
        return w[:, :h], None, w[:, h:h + 3], w[:, h + 3]
    return w, None, None, None


def split_layers(decoder: Decoder) -> list[SplitLayer]:
    """The decoder's layers as :class:`SplitLayer` (differentiable views of its parameters)."""
    out: list[SplitLayer] = []
    for l in range(decoder.num_layers):
        lin = getattr(decoder, f"lin{l}")
        w, b = lin.weight, lin.bias
        last = l == decoder.num_layers - 1
        norm = None if last else getattr(decoder, f"bn{l}", None)
        folded = decoder.use_sine and not last and norm is None
        w_h, w_code, w_xyz, w_t = _blocks(decoder, l, w)
        w_pt = w_xyz if w_h is None else (w_h if w_xyz is None else torch.cat([w_h, w_xyz], 1))
        if folded:
            w_pt, b = w_pt * OMEGA, b * OMEGA
            w_code = None if w_code is None else w_code * OMEGA
            w_t = None if w_t is None else w_t * OMEGA
        out.append(SplitLayer(w_pt, 0 if w_h is None else w_h.shape[1], w_xyz is not None, w_code, w_t, b,
                              folded, norm, last))
    return out


def frame_biases(layers: list[SplitLayer], codes: torch.Tensor, times: torch.Tensor) -> list[torch.Tensor]:
    """Per-frame biases of every layer: ``bias + W_code·code + W_t·t``, each (k, out), for k frames
    (``codes`` (k, CodeLength), ``times`` (k,))."""
    out = []
    for L in layers:
        b = L.bias.expand(codes.shape[0], -1)
        if L.w_code is not None:
            b = b + codes @ L.w_code.t()
        if L.w_t is not None:
            b = b + times[:, None].to(L.w_t.dtype) * L.w_t
        out.append(b)
    return out


class _NumpySine(torch.autograd.Function):
    """``sin`` with NumPy's SIMD kernels (about 2× faster than torch's on the CPU, both within about
    1 ulp); backward ``grad · cos``."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z)
        return torch.from_numpy(np.sin(z.detach().numpy()))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        return torch.from_numpy(np.cos(z.detach().numpy())).mul_(grad)


def sine(z: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``sin(z)``: NumPy's kernel for float32 CPU tensors (differentiable), torch's elsewhere; written
    into ``out`` when given (inference)."""
    numpy_ok = z.device.type == "cpu" and z.dtype == torch.float32 and not torch.compiler.is_compiling()
    if out is not None:
        if numpy_ok:  # out may be a column slice of a workspace array: NumPy writes through the view
            np.sin(z.numpy(), out=out.numpy())
        else:
            out.copy_(torch.sin(z))
        return out
    return _NumpySine.apply(z) if numpy_ok else torch.sin(z)


class Workspace:
    """Preallocated arrays of :func:`forward_points` for inference on up to ``rows`` points of one frame:
    the input of every layer (xyz in its last columns) and the pre-activations."""

    def __init__(self, layers: list[SplitLayer], rows: int, device: torch.device, dtype: torch.dtype) -> None:
        self.rows = rows
        self.inputs = [torch.empty(rows, L.w.shape[1], device=device, dtype=dtype) for L in layers]
        self.z = {w: torch.empty(rows, w, device=device, dtype=dtype) for w in {L.w.shape[0] for L in layers}}


def _affine(L: SplitLayer, inp: torch.Tensor, b: torch.Tensor, k: int, first: bool,
            work: Workspace | None) -> torch.Tensor:
    """``inp @ w.T + b`` for k frames of rows (``b`` (k, out)), into the workspace when given."""
    if work is not None:  # one frame: b is (1, out)
        return torch.addmm(b[0], inp, L.w.t(), out=work.z[L.w.shape[0]][:inp.shape[0]])
    if first:  # layer 0 reads only x, y, z: cheap, and kept in float32 under autocast
        with torch.autocast(device_type=inp.device.type, enabled=False):
            z = inp.float() @ L.w.float().t()
    else:
        z = inp @ L.w.t()
    return (z.view(k, -1, z.shape[-1]) + b[:, None, :]).view(-1, z.shape[-1])


def _activate(decoder: Decoder, L: SplitLayer, z: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    if L.norm is not None:
        z = L.norm(z)
    if not decoder.use_sine:
        return F.relu(z) if out is None else torch.clamp(z, min=0, out=out)
    if not L.folded:
        z = z * OMEGA
    return sine(z, out)


def forward_points(decoder: Decoder, layers: list[SplitLayer], biases: list[torch.Tensor], xyz: torch.Tensor,
                   work: Workspace | None = None) -> torch.Tensor:
    """SDF of ``k`` frames of ``m`` points: ``xyz`` (k, m, 3) → (k, m).

    ``biases`` come from :func:`frame_biases` for the same ``k`` frames. Differentiable; with
    ``work`` (inference on one frame, ``k = 1`` and ``m <= work.rows``) every layer writes into the
    workspace and the result is a view of it.
    """
    k, m, _ = xyz.shape
    rows = xyz.reshape(k * m, 3)
    x: torch.Tensor | None = None
    for l, (L, b) in enumerate(zip(layers, biases)):
        if work is not None:
            inp = work.inputs[l][:k * m]
            if L.has_xyz:
                inp[:, -3:] = rows
        elif x is None:
            inp = rows
        else:
            inp = torch.cat([x, rows.to(x.dtype)], -1) if L.has_xyz else x
        z = _affine(L, inp, b, k, x is None and work is None, work)
        if L.last:
            if decoder.use_tanh:
                z = torch.tanh(z)
            return z[:, 0].reshape(k, m)
        nxt = None if work is None else work.inputs[l + 1][:k * m, :layers[l + 1].n_h]
        x = _activate(decoder, L, z, nxt)
    raise AssertionError("a decoder has an output layer")
