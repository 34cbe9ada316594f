"""A small 3-D segmentation network, its training, and its predictions turned into cell instances.

Used by ``benchmarks/segmentation_transfer.py`` to ask whether synthetic microscopy helps a
segmentation network. Everything is ``(Z, Y, X)`` (image file order), one frame at a time.

* Targets: three classes per voxel, :data:`CLASSES` — background, cell interior, and the cell's
  boundary (its voxels that touch another label or the background, 6-connectivity). The boundary
  class is what lets touching cells and daughters that have just divided be told apart.
* Network: MONAI's ``UNet`` with few channels (about 0.15 M parameters by default), one input
  channel (the image, normalised per frame by :func:`normalise`), three output channels; loss
  Dice + cross-entropy (``monai.losses.DiceCELoss``); Adam. Training draws random patches (half of
  them centred on a cell voxel), flips them along every axis, turns them by 90° in the (Y, X)
  plane and scales and shifts their intensities (MONAI transforms, seeded).
* Prediction: sliding windows of the patch size (Gaussian blending), softmax.
* Instances (:func:`instances_from_probabilities`): the foreground is ``p(background) < 0.5``;
  seeds are the face-connected components of ``p(interior) > 0.5`` inside it (a foreground
  component without a seed becomes one seed); a watershed on ``p(boundary)`` grows the seeds
  over the foreground (scikit-image), so cells separated only by a boundary become two
  instances; instances smaller than ``min_voxels`` are dropped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage
from skimage.segmentation import find_boundaries, watershed
from tqdm import tqdm

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import stop_requests
from autodecoder.microscopy.datasets import collect_images, read_frame, read_pair

__all__ = ["CLASSES", "SegmentationSettings", "normalise", "class_targets", "build_network", "load_training_frames",
           "train_network", "predict_probabilities", "instances_from_probabilities", "segment_frames"]

#: The classes of the network's output channels, in order.
CLASSES = ("background", "interior", "boundary")

#: Intensity percentiles mapped to 0 and 1 by :func:`normalise`.
PERCENTILES = (1.0, 99.8)

STOP_MESSAGE = "stopping after this training step (Ctrl-C again to stop at once)"


@dataclass(frozen=True)
class SegmentationSettings:
    """The network, its training and the instance post-processing.

    Attributes:
        channels: feature channels of the UNet's levels (one level more than ``strides``).
        strides: down-sampling factor between levels; the patch size must divide by their product.
        patch_zyx: training patch and sliding-window size, voxels ``(Z, Y, X)``.
        batch: patches per training step.
        steps: training steps (Adam).
        learning_rate: Adam's step size.
        min_voxels: instances smaller than this (voxels) are dropped.
    """

    channels: tuple[int, ...] = (8, 16, 32, 64)
    strides: tuple[int, ...] = (2, 2, 2)
    patch_zyx: tuple[int, int, int] = (32, 64, 64)
    batch: int = 2
    steps: int = 300
    learning_rate: float = 2e-3
    min_voxels: int = 20

    def __post_init__(self) -> None:
        factor = int(np.prod(self.strides))
        if len(self.channels) != len(self.strides) + 1:
            raise UserError(f"segmentation channels {self.channels}: expected {len(self.strides) + 1} levels "
                            f"(one more than the strides {self.strides})")
        if any(p % factor for p in self.patch_zyx):
            raise UserError(f"segmentation patch {self.patch_zyx}: every size must divide by {factor} "
                            f"(the product of the strides {self.strides})")
        if self.steps < 1 or self.batch < 1:
            raise UserError(f"segmentation steps {self.steps}, batch {self.batch}: expected integers >= 1")

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def normalise(image: NDArray) -> NDArray[np.float32]:
    """A frame ``(Z, Y, X)`` of any numeric dtype as float32, its 1st and 99.8th intensity percentiles
    mapped to 0 and 1 (so that cameras with other offsets and gains give comparable inputs)."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = (float(v) for v in np.percentile(image, PERCENTILES))
    return ((image - lo) / max(hi - lo, 1e-6)).astype(np.float32, copy=False)


def class_targets(labels: NDArray) -> NDArray[np.uint8]:
    """Per-voxel classes (:data:`CLASSES`) of an instance label image ``(Z, Y, X)`` (0 = background):
    0 background, 1 interior, 2 boundary (voxels of a cell with a face neighbour of another label)."""
    labels = np.asarray(labels)
    out = (labels > 0).astype(np.uint8)
    out[find_boundaries(labels, connectivity=1, mode="inner") & (labels > 0)] = 2
    return out


def build_network(settings: SegmentationSettings) -> torch.nn.Module:
    """MONAI's 3-D ``UNet``: 1 input channel, ``len(CLASSES)`` output channels (logits)."""
    from monai.networks.nets import UNet
    return UNet(spatial_dims=3, in_channels=1, out_channels=len(CLASSES), channels=settings.channels,
                strides=settings.strides, num_res_units=1)


def load_training_frames(dataset: str | Path) -> list[tuple[NDArray[np.float32], NDArray[np.uint8]]]:
    """The annotated frames of a CTC dataset (every sequence; masks from ``NN_GT/SEG``, else ``TRA``):
    ``(normalised image, class targets)`` pairs, both ``(Z, Y, X)``."""
    images = collect_images(dataset, what="training images")
    frames = []
    for t in range(len(images.frames)):
        if images.masks[t] is None:
            continue
        image, labels = read_pair(images, t)
        frames.append((normalise(image), class_targets(labels)))
    if not frames:
        raise UserError(f"{dataset}: no annotated frames (expected instance masks in NN_GT/SEG or NN_GT/TRA)")
    return frames


def _augmentation(settings: SegmentationSettings, seed: int):
    """Random patches (half centred on a cell voxel), flips, 90° turns in (Y, X), intensity jitter."""
    from monai.transforms import (Compose, RandCropByPosNegLabeld, RandFlipd, RandRotate90d, RandScaleIntensityd,
                                  RandShiftIntensityd, SpatialPadd)
    keys = ["image", "label"]
    chain = Compose([SpatialPadd(keys, settings.patch_zyx),
                     RandCropByPosNegLabeld(keys, "label", settings.patch_zyx, pos=1, neg=1,
                                            num_samples=settings.batch),
                     RandFlipd(keys, 0.5, 0), RandFlipd(keys, 0.5, 1), RandFlipd(keys, 0.5, 2),
                     RandRotate90d(keys, 0.5, 1, (1, 2)),
                     RandScaleIntensityd("image", 0.2, 0.5), RandShiftIntensityd("image", 0.1, prob=0.5)])
    chain.set_random_state(seed=seed)
    return chain


def train_network(frames: list[tuple[NDArray, NDArray]], settings: SegmentationSettings, seed: int,
                  device: torch.device, progress: bool = True,
                  desc: str = "segmentation") -> tuple[torch.nn.Module, dict]:
    """Train a fresh network on ``frames`` (from :func:`load_training_frames`) for ``settings.steps`` steps.

    ``seed`` fixes the initial weights, the patches and the augmentation. A progress bar shows the
    loss. Ctrl-C or SIGTERM finishes the current step and raises ``KeyboardInterrupt``.

    Returns:
        The network (in eval mode, on ``device``) and a record: ``steps``, ``seconds``, ``loss_first``
        and ``loss_last`` (mean of the first and last 10 % of steps), ``parameters``.
    """
    from monai.losses import DiceCELoss
    torch.manual_seed(seed)
    net = build_network(settings).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.learning_rate)
    criterion = DiceCELoss(to_onehot_y=True, softmax=True)
    augment = _augmentation(settings, seed)
    rng = np.random.default_rng(seed)
    data = [{"image": image[None], "label": target[None]} for image, target in frames]
    losses: list[float] = []
    t0 = time.perf_counter()
    net.train()
    with stop_requests(STOP_MESSAGE) as stop, tqdm(total=settings.steps, unit="step", disable=not progress,
                                                   dynamic_ncols=True, desc=desc, leave=False) as bar:
        for _ in range(settings.steps):
            patches = augment(data[int(rng.integers(len(data)))])
            x = torch.stack([p["image"].as_tensor() for p in patches]).float().to(device)
            y = torch.stack([p["label"].as_tensor() for p in patches]).long().to(device)
            optimiser.zero_grad(set_to_none=True)
            loss = criterion(net(x), y)
            loss.backward()
            optimiser.step()
            losses.append(loss.detach().item())
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            if stop.requested:
                raise KeyboardInterrupt
    net.eval()
    k = max(1, len(losses) // 10)
    return net, {"steps": len(losses), "seconds": time.perf_counter() - t0, "loss_first": float(np.mean(losses[:k])),
                 "loss_last": float(np.mean(losses[-k:])), "parameters": sum(p.numel() for p in net.parameters())}


@torch.no_grad()
def predict_probabilities(net: torch.nn.Module, image: NDArray, settings: SegmentationSettings,
                          device: torch.device) -> NDArray[np.float32]:
    """Class probabilities ``(len(CLASSES), Z, Y, X)`` of a raw frame ``(Z, Y, X)`` (normalised here),
    by sliding windows of ``settings.patch_zyx`` with Gaussian blending (any frame size)."""
    from monai.inferers import sliding_window_inference
    x = torch.from_numpy(normalise(image))[None, None].to(device)
    logits = sliding_window_inference(x, settings.patch_zyx, max(1, settings.batch), net, overlap=0.25,
                                      mode="gaussian")
    return torch.softmax(torch.as_tensor(logits), dim=1)[0].cpu().numpy().astype(np.float32)


def instances_from_probabilities(probabilities: NDArray, min_voxels: int = 20) -> NDArray[np.int32]:
    """Cell instances ``(Z, Y, X)`` (0 = background, 1..n) from class probabilities ``(3, Z, Y, X)``.

    Foreground ``p(background) < 0.5``; seeds: 6-connected components of ``p(interior) > 0.5``
    within it, plus every (26-connected) foreground component that holds no seed; a marker watershed on
    ``p(boundary)`` restricted to the foreground assigns each foreground voxel to a seed; instances
    below ``min_voxels`` voxels are removed and the rest numbered 1..n in scan order.
    """
    p = np.asarray(probabilities, dtype=np.float32)
    if p.ndim != 4 or p.shape[0] != len(CLASSES):
        raise UserError(f"probabilities of shape {p.shape}: expected ({len(CLASSES)}, Z, Y, X)")
    foreground = p[0] < 0.5
    # Face-connected seeds: the interiors of two touching cells can meet at a corner across their
    # boundary layers, and 26-connectivity would join them into one seed.
    seeds, n = ndimage.label((p[1] > 0.5) & foreground)
    parts, m = ndimage.label(foreground, np.ones((3, 3, 3), dtype=bool))
    if m:
        seeded = np.zeros(m + 1, dtype=bool)
        seeded[np.unique(parts[seeds > 0])] = True
        orphan = ~seeded[parts] & (parts > 0)  # foreground pieces the interior class missed
        seeds[orphan] = n + np.unique(parts[orphan], return_inverse=True)[1].reshape(-1) + 1
    labels = watershed(p[2], seeds, mask=foreground) if seeds.any() else np.zeros(p.shape[1:], np.int32)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    numbering = np.zeros(len(sizes), dtype=np.int32)
    numbering[keep] = np.arange(1, int(keep.sum()) + 1)
    return numbering[labels]


def segment_frames(net: torch.nn.Module, sequence: str | Path, settings: SegmentationSettings,
                   device: torch.device, progress: bool = False) -> Iterator[NDArray[np.int32]]:
    """Instance labels ``(Z, Y, X)`` of every frame of a CTC sequence folder (``NN/t000.tif …``), in order."""
    images = collect_images(sequence, what="test images")
    for ref in tqdm(images.frames, unit="frame", disable=not progress, leave=False, desc="predict"):
        probs = predict_probabilities(net, read_frame(ref), settings, device)
        yield instances_from_probabilities(probs, settings.min_voxels)
