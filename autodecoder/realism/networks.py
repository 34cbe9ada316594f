"""The realism step's networks, built from MONAI blocks, and the generator's receptive field.

* Generator: ``monai.networks.nets.UNet`` (``channels`` per level, stride-2 down-sampling, ``res_units``
  residual units per level, PReLU, **no normalisation layer**), then PReLU, a 1×1 convolution to one
  channel and tanh. Unpaired generators add the head to the logit of their input image (residual);
  the paired generator maps mask channels to an image. Without normalisation (no instance or batch
  statistics) each output voxel depends only on the inputs within the receptive field, so tiles with
  a halo of that radius give the whole-volume result.
* Discriminator: ``monai.networks.nets.PatchDiscriminator`` without normalisation (instance or batch
  statistics would hide a patch's brightness and contrast, which is what realism is about), scored
  with ``monai.losses.PatchAdversarialLoss`` in its least-squares form (no activation: LSGAN targets
  1 for real, 0 for generated).
* :func:`receptive_radius`: measured, not derived: the input voxels that carry gradient to a block of
  output voxels (one per phase of the down-sampling), on growing probes until the support stops short
  of the probe's border.

MONAI is the optional extra ``realism``; without it every builder stops with one line saying how to
install it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from autodecoder.experiment.errors import UserError
from autodecoder.realism.config import RealismConfig
from autodecoder.realism.data import MASK_CHANNELS

try:  # the optional extra: pip install -e '.[realism]'
    from monai.losses import PatchAdversarialLoss
    from monai.networks.blocks import Convolution
    from monai.networks.nets import PatchDiscriminator, UNet
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    PatchAdversarialLoss = Convolution = PatchDiscriminator = UNet = None

MISSING_MONAI = "the realism step needs MONAI: install the realism extra: pip install -e '.[realism]'"

#: Inputs of a residual generator are clamped to ±this before their logit (atanh) is taken.
RESIDUAL_LIMIT = 0.995
#: Largest probe edge tried when measuring the receptive field.
MAX_PROBE = 1024


def require_monai() -> None:
    """UserError (one line) when MONAI is not installed."""
    if UNet is None:
        raise UserError(MISSING_MONAI)


class Generator(nn.Module):
    """U-Net, PReLU, 1×1 head, tanh: outputs in (-1, 1), the real data's percentile range.

    ``residual`` (unpaired): the head is added to the logit ``atanh(x)`` of the input image (clamped
    to ±:data:`RESIDUAL_LIMIT`), so the network learns a change of the input rather than the image.
    Input ``(B, C, *spatial)``, output ``(B, 1, *spatial)``; spatial sizes must be multiples of the
    down-sampling factor. Every operation after the U-Net is per voxel.
    """

    def __init__(self, dims: int, in_channels: int, channels: tuple[int, ...], res_units: int,
                 residual: bool) -> None:
        super().__init__()
        require_monai()
        self.residual = residual
        self.unet = UNet(spatial_dims=dims, in_channels=in_channels, out_channels=channels[0], channels=channels,
                         strides=(2,) * (len(channels) - 1), num_res_units=res_units, act="PRELU", norm=None)
        self.act = nn.PReLU()
        self.head = Convolution(spatial_dims=dims, in_channels=channels[0], out_channels=1, kernel_size=1,
                                conv_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.act(self.unet(x)))
        if self.residual:  # a change of the input's logit: the identity is near, the output stays bounded
            y = y + torch.atanh(x[:, :1].clamp(-RESIDUAL_LIMIT, RESIDUAL_LIMIT))
        return torch.tanh(y)


def generator_inputs(config: RealismConfig) -> int:
    """Input channels of the generator that makes real-looking images: the mask channels (paired) or one."""
    return MASK_CHANNELS if config.paired else 1


def build_generators(config: RealismConfig) -> nn.ModuleDict:
    """``to_real`` (synthetic or masks -> real) and, unpaired, ``to_synthetic`` (real -> synthetic)."""
    make = lambda c: Generator(config.dims, c, tuple(config.channels), config.res_units, not config.paired)  # noqa: E731
    nets = {"to_real": make(generator_inputs(config))}
    if not config.paired:
        nets["to_synthetic"] = make(1)
    return nn.ModuleDict(nets)


def build_discriminators(config: RealismConfig) -> nn.ModuleDict:
    """``real`` (judges real-looking images; paired: conditioned on the masks) and, unpaired, ``synthetic``."""
    require_monai()
    make = lambda c: PatchDiscriminator(spatial_dims=config.dims, channels=config.disc_channels,  # noqa: E731
                                        in_channels=c, num_layers_d=config.disc_layers, norm=None)
    nets = {"real": make(1 + (MASK_CHANNELS if config.paired else 0))}
    if not config.paired:
        nets["synthetic"] = make(1)
    return nn.ModuleDict(nets)


def adversarial_loss() -> nn.Module:
    """Least-squares patch loss without an activation (LSGAN)."""
    require_monai()
    return PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)


def receptive_radius(generator: Generator, dims: int, factor: int) -> int:
    """How far (voxels, along any axis) an output voxel's value reaches into the input.

    Per axis, the gradients of a ``factor``-wide block of the U-Net's outputs (every phase of the
    down-sampling) with respect to a random input that is long along that axis and thin along the others
    (a path of greatest reach runs along the axis); the probe doubles until the support ends inside it.
    The 1×1 head, the residual and tanh add nothing to the reach.
    """
    net, in_channels = generator.unet, generator.unet.in_channels
    param = next(net.parameters())
    radius = 0
    for axis in range(dims):
        size = 8 * factor
        while True:
            if size > MAX_PROBE:
                raise UserError(f"the generator's receptive field exceeds {MAX_PROBE // 2} voxels; use fewer "
                                "\"channels\" levels")
            shape = [2 * factor] * dims
            shape[axis] = size
            x = torch.randn(1, in_channels, *shape, device=param.device, dtype=param.dtype, requires_grad=True)
            c = size // 2 // factor * factor
            block = [slice(None)] * (dims + 2)
            block[2 + axis] = slice(c, c + factor)
            (grad,) = torch.autograd.grad(net(x)[tuple(block)].sum(), x)
            profile = grad[0].abs().sum(0)  # (*spatial)
            others = tuple(a for a in range(dims) if a != axis)
            hit = torch.nonzero(profile.sum(others) if others else profile).flatten()
            lo, hi = int(hit.min()), int(hit.max())
            if lo > 0 and hi < size - 1:
                radius = max(radius, c - lo, hi - (c + factor - 1))
                break
            size *= 2
    return radius


def halo(radius: int, factor: int) -> int:
    """The tile halo: the receptive radius rounded up to a multiple of the down-sampling factor."""
    return int(math.ceil(radius / factor) * factor)


__all__ = ["MISSING_MONAI", "RESIDUAL_LIMIT", "require_monai", "Generator", "generator_inputs", "build_generators",
           "build_discriminators", "adversarial_loss", "receptive_radius", "halo"]
