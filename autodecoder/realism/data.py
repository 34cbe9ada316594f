"""The realism step's data: image volumes from folders, their intensity scale, and training patches.

* Datasets are found by :func:`autodecoder.microscopy.datasets.collect_images` (folders of 3-D
  TIFF/OME-TIFF frames, 4-D stacks, Cell Tracking Challenge datasets with their masks); frames are
  ``(Z, Y, X)`` arrays, read one at a time.
* :class:`Intensity`: a dataset's intensity scale, two percentiles measured over its frames. The
  networks see ``2 (v - low) / (high - low) - 1`` (low -> -1, high -> +1); the real data's scale,
  stored in the checkpoint, maps a generated image back to the real recordings' range.
* :func:`mask_channels`: what a paired generator sees of an instance mask: the foreground and the
  cells' boundary voxels (touching cells stay apart).
* :class:`PatchSampler`: seeded random patches (3-D ``(Z, Y, X)`` or 2-D ``(Y, X)`` from a z slice)
  with random flips along y and x; its generator's state is saved with every checkpoint, so a
  resumed run draws the patches an uninterrupted run draws.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tifffile
import torch
from skimage.segmentation import find_boundaries

from autodecoder.experiment.errors import UserError
from autodecoder.io.tiff import tiff_info
from autodecoder.microscopy.datasets import FrameRef, ImageSet, collect_images, read_frame, read_pair
from autodecoder.realism.config import RealismConfig, discriminator_output

#: Voxels per frame that the percentiles are measured on (a fixed random subset), and frames used.
PERCENTILE_SAMPLES = 250_000
PERCENTILE_FRAMES = 16
#: Channels a paired generator takes: foreground, cell boundaries.
MASK_CHANNELS = 2

Log = Callable[[str], Any]


# --------------------------------------------------------------------------
# datasets

def open_images(path: str | Path, masks: str | Path | None, what: str, log: Log = print) -> ImageSet:
    """The frames (and masks) of one dataset, its notes logged; see :func:`collect_images`."""
    images = collect_images(path, masks, what)
    for note in images.notes:
        log(f"note: {what}: {note}")
    return images


def frame_shape(ref: FrameRef) -> tuple[int, int, int]:
    """A frame's ``(Z, Y, X)`` shape from the file's header (pixels are not read)."""
    x, y, z = (ref.info or tiff_info(ref.path)).frame_grid  # (rows, columns, slices)
    return (z, x, y)


def voxel_size_zyx(path: str | Path) -> tuple[float, float, float] | None:
    """The voxel size (µm along z, y, x) that a TIFF file records, or None when it records none.

    OME-TIFF: ``PhysicalSizeZ/Y/X`` (µm, or nm converted); ImageJ: the ``spacing`` and the X/Y
    resolution tags when the unit is µm. A size that is missing is taken as 1 µm only if the
    others are present (2-D files have no z spacing).
    """
    scale = {"µm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0, "\u03bcm": 1.0, "nm": 1e-3}
    try:
        with tifffile.TiffFile(path) as tif:
            if tif.is_ome and tif.ome_metadata:
                image = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
                pixels = (image[0] if isinstance(image, list) else image)["Pixels"]
                sizes = []
                for axis in "ZYX":
                    value, unit = pixels.get(f"PhysicalSize{axis}"), pixels.get(f"PhysicalSize{axis}Unit", "µm")
                    sizes.append(None if value is None or unit not in scale else float(value) * scale[unit])
            elif tif.is_imagej:
                meta = tif.imagej_metadata or {}
                if meta.get("unit") not in scale:
                    return None
                tags, f = tif.pages[0].tags, scale[meta["unit"]]
                res = [tags[n].value if n in tags else None for n in ("YResolution", "XResolution")]
                sizes = [meta.get("spacing") and float(meta["spacing"]) * f]
                sizes += [r[1] / r[0] * f if r and r[0] else None for r in res]
            else:
                return None
    except Exception:  # an unreadable calibration is no calibration; the pixels are read elsewhere
        return None
    if all(s is None for s in sizes):
        return None
    return tuple(float(s) if s else 1.0 for s in sizes)  # type: ignore[return-value]


def time_increment_s(path: str | Path) -> float | None:
    """The frame interval (s) an OME-TIFF records, or None."""
    try:
        with tifffile.TiffFile(path) as tif:
            if not (tif.is_ome and tif.ome_metadata):
                return None
            image = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
            value = (image[0] if isinstance(image, list) else image)["Pixels"].get("TimeIncrement")
    except Exception:  # as for the voxel size: unreadable metadata is no metadata
        return None
    return float(value) if value else None


# --------------------------------------------------------------------------
# intensities

@dataclass(frozen=True)
class Intensity:
    """A dataset's intensity scale: the values at the two percentiles, and the files' dtype."""

    low: float
    high: float
    dtype: str

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """Recorded values -> the networks' scale (float32): low -> -1, high -> +1."""
        return ((np.asarray(values, np.float32) - self.low) * (2.0 / (self.high - self.low)) - 1.0).astype(np.float32)

    def restore(self, values: np.ndarray) -> np.ndarray:
        """The networks' scale -> recorded values (float32), the inverse of :meth:`normalise`."""
        return ((np.asarray(values, np.float32) + 1.0) * ((self.high - self.low) / 2.0) + self.low).astype(np.float32)

    def to_file(self, values: np.ndarray) -> np.ndarray:
        """Recorded values as written: rounded and clipped to uint16 for integer data, else float32."""
        if np.dtype(self.dtype).kind in "uib":
            return np.clip(np.rint(values), 0, 65535).astype(np.uint16)
        return np.asarray(values, np.float32)

    def as_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Intensity":
        return cls(float(d["low"]), float(d["high"]), str(d["dtype"]))


def measure_intensity(frames: list[FrameRef], percentiles: tuple[float, float], what: str) -> Intensity:
    """The two percentiles of ``frames`` (up to :data:`PERCENTILE_FRAMES` evenly spaced frames, a fixed
    random subset of voxels of each), so that the same data always give the same scale."""
    rng = np.random.default_rng(0)
    picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), PERCENTILE_FRAMES)).round().astype(int))
    values, dtype = [], None
    for i in picks:
        frame = read_frame(frames[i]).ravel()
        dtype = dtype or frame.dtype.name
        take = rng.choice(frame.size, PERCENTILE_SAMPLES, replace=False) if frame.size > PERCENTILE_SAMPLES else None
        values.append((frame if take is None else frame[take]).astype(np.float64))
    low, high = np.percentile(np.concatenate(values), percentiles)
    if not np.isfinite([low, high]).all() or high <= low:
        raise UserError(f"{frames[0].path}: the {what} have no intensity range (percentiles {percentiles[0]} and "
                        f"{percentiles[1]} are both {low:g}); expected images with contrast")
    return Intensity(float(low), float(high), str(dtype))


def mask_channels(labels: np.ndarray) -> np.ndarray:
    """Instance masks ``(Z, Y, X)`` (0 = background) -> float32 ``(2, Z, Y, X)``: the foreground (0/1)
    and the voxels of each cell next to another label or the background (0/1)."""
    labels = np.asarray(labels)
    return np.stack([labels > 0, find_boundaries(labels, mode="inner")]).astype(np.float32)


# --------------------------------------------------------------------------
# patches

class FrameCache:
    """The frames of one dataset as the networks see them, read on demand; the last ``size`` kept."""

    def __init__(self, images: ImageSet, intensity: Intensity | None, with_masks: bool, size: int) -> None:
        self.images, self.intensity, self.with_masks, self.size = images, intensity, with_masks, size
        self.indices = [t for t, m in enumerate(images.masks) if m is not None or not with_masks]
        self.shapes = [frame_shape(images.frames[t]) for t in self.indices]
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Usable frame ``i``: the normalised image ``(Z, Y, X)`` and, with masks, ``(2, Z, Y, X)``."""
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        t = self.indices[i]
        image, labels = read_pair(self.images, t) if self.with_masks else (read_frame(self.images.frames[t]), None)
        item = (self.intensity.normalise(image), None if labels is None else mask_channels(labels))
        self._cache[i] = item
        if len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return item


def patch_shape(config: RealismConfig, shapes: list[tuple[int, int, int]], source: Path) -> tuple[int, ...]:
    """The training patch: ``config.patch`` along each axis (z too in 3-D), shrunk to a multiple of the
    down-sampling factor where the smallest frame is smaller; refused when that leaves too little."""
    f = config.down_factor
    smallest = [min(s[a] for s in shapes) for a in range(3)]
    axes = smallest if config.dims == 3 else smallest[1:]
    patch = tuple(min(config.patch, n // f * f) for n in axes)
    if min(patch) < f or min(discriminator_output(p, config.disc_layers) for p in patch) < 1:
        raise UserError(f"{source}: frames as small as {tuple(smallest)} (Z, Y, X) leave a patch of {patch} voxels, "
                        f"too small for the networks; use --dims 2 for thin stacks, or fewer \"disc_layers\"")
    return patch


class PatchSampler:
    """Random training patches of one or two datasets, from one seeded generator.

    ``sides``: name -> :class:`FrameCache`. :meth:`draw` gives, per side, float32 tensors
    ``(B, 1, *patch)`` of images and, for a side with masks, ``(B, 2, *patch)`` under ``<name>_masks``.
    """

    def __init__(self, sides: dict[str, FrameCache], config: RealismConfig, seed: int) -> None:
        self.sides, self.config = sides, config
        shapes = [s for c in sides.values() for s in c.shapes]
        self.patch = patch_shape(config, shapes, next(iter(sides.values())).images.source)
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 7])))

    def _one(self, cache: FrameCache) -> tuple[np.ndarray, np.ndarray | None]:
        rng, i = self.rng, int(self.rng.integers(len(cache.indices)))
        image, masks = cache.get(i)
        z, y, x = cache.shapes[i]
        if self.config.dims == 3:
            pz, py, px = self.patch
            z0 = int(rng.integers(z - pz + 1))
            zs = slice(z0, z0 + pz)
        else:
            py, px = self.patch
            zs = int(rng.integers(z))  # one slice: the z axis drops out
        y0, x0 = int(rng.integers(y - py + 1)), int(rng.integers(x - px + 1))
        window = (zs, slice(y0, y0 + py), slice(x0, x0 + px))
        flip = rng.random(2) < 0.5 if self.config.flips else np.zeros(2, bool)
        axes = tuple(a for a, f in zip((-2, -1), flip) if f)

        def cut(a: np.ndarray) -> np.ndarray:
            part = a[window] if a.ndim == 3 else a[(slice(None), *window)]
            return np.ascontiguousarray(np.flip(part, axes) if axes else part)

        return cut(image)[None], None if masks is None else cut(masks)

    def draw(self) -> dict[str, torch.Tensor]:
        """One batch per side (``config.batch`` patches each)."""
        out: dict[str, torch.Tensor] = {}
        for name, cache in self.sides.items():
            items = [self._one(cache) for _ in range(self.config.batch)]
            out[name] = torch.from_numpy(np.stack([a for a, _ in items]))
            if cache.with_masks:
                out[f"{name}_masks"] = torch.from_numpy(np.stack([m for _, m in items]))
        return out

    def state(self) -> dict[str, Any]:
        return self.rng.bit_generator.state

    def restore(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state


__all__ = ["MASK_CHANNELS", "open_images", "frame_shape", "voxel_size_zyx", "time_increment_s", "Intensity", "measure_intensity",
           "mask_channels", "FrameCache", "patch_shape", "PatchSampler"]
