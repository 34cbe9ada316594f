"""Reading mask TIFFs: a file's series shape and axes, one 3-D volume, one frame of a 4-D stack.

Every volume read here comes out in the SDF frame order ``(X, Y, Z)``, which is MATLAB's view of
the file ``(rows, columns, slices)``: tifffile reads ``(pages, rows, columns)`` and
:func:`autodecoder.io.exports.tiff_to_frame` transposes it with ``(1, 2, 0)``. Values keep the
file's dtype (label images stay labels).

A 4-D stack holds ``T`` frames of ``Z`` slices. Most files store the frames outermost (``TZYX``:
ImageJ hyperstacks, which are always ``TZCYX``, and tifffile's shaped files); OME-TIFFs may store
the slices outermost (``ZTYX``). :func:`read_stack_frame` honours the order the file's metadata
states, so both give the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from autodecoder.experiment.errors import UserError
from autodecoder.io.exports import tiff_to_frame

__all__ = ["TIFF_SUFFIXES", "TiffInfo", "tiff_info", "read_tiff_volume", "read_stack_frame"]

TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class TiffInfo:
    """The first image series of a TIFF file, without its length-1 axes.

    Attributes:
        path: the file.
        shape: the series shape as tifffile reads it, length-1 axes dropped.
        axes: the matching axis letters (``"TZYX"``, ``"ZTYX"``, ``"QQYX"`` …), or ``""`` when the
            file does not say.
    """

    path: Path
    shape: tuple[int, ...]
    axes: str

    @property
    def z_outer(self) -> bool:
        """Whether a 4-D stack stores its slices outermost (``ZT…``)."""
        return len(self.shape) == 4 and self.axes[:2] == "ZT"

    @property
    def n_frames(self) -> int:
        """``T`` of a 4-D stack; 1 for a 3-D volume."""
        if len(self.shape) != 4:
            return 1
        return self.shape[1] if self.z_outer else self.shape[0]

    @property
    def frame_grid(self) -> tuple[int, int, int]:
        """The shape of one frame in SDF order ``(X, Y, Z)`` = (rows, columns, slices)."""
        if len(self.shape) == 4:
            n_z = self.shape[0] if self.z_outer else self.shape[1]
            return (self.shape[2], self.shape[3], n_z)
        z, x, y = self.shape[-3:]
        return (x, y, z)


def tiff_info(path: str | Path) -> TiffInfo:
    """Shape and axes of the first image series of ``path``, without reading the pixels.

    Raises:
        UserError: the file cannot be read as a TIFF file.
    """
    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            s = tif.series[0]
            shape, axes = tuple(int(n) for n in s.shape), str(s.axes)
    except Exception as e:  # tifffile raises several types for broken or non-TIFF files
        raise UserError(f"{path}: cannot read as a TIFF file ({e})") from None
    keep = [i for i, n in enumerate(shape) if n != 1]
    kept_axes = "".join(axes[i] for i in keep) if len(axes) == len(shape) else ""
    return TiffInfo(path, tuple(shape[i] for i in keep), kept_axes)


def read_tiff_volume(path: str | Path) -> np.ndarray:
    """One 3-D mask file as an ``(X, Y, Z)`` array of the file's dtype.

    Raises:
        UserError: an unreadable file, or one that is not 3-D.
    """
    try:
        vol = np.asarray(tifffile.imread(path, series=0))
    except Exception as e:  # tifffile raises several types for broken or non-TIFF files
        raise UserError(f"{path}: cannot read as a TIFF file ({e})") from None
    vol = vol.reshape([n for n in vol.shape if n != 1]) if vol.ndim > 3 else vol
    if vol.ndim != 3:
        raise UserError(f"{path}: the mask is not 3D (shape {vol.shape})")
    return tiff_to_frame(vol)


def read_stack_frame(path: str | Path, t: int, info: TiffInfo | None = None) -> np.ndarray:
    """Frame ``t`` of a 4-D TIFF stack as an ``(X, Y, Z)`` array of the file's dtype.

    Reads only the frame's pages when the file stores single planes; ``info`` is the file's
    :func:`tiff_info` (read again when not given).
    """
    info = info or tiff_info(path)
    if len(info.shape) != 4:
        raise UserError(f"{path}: a TIFF stack must be 4D (T, Z, Y, X); this one has shape {info.shape}")
    n_t, n_z, t = info.n_frames, info.frame_grid[2], int(t)
    z_outer = info.z_outer
    try:
        with tifffile.TiffFile(path) as tif:
            s = tif.series[0]
            pages = [z * n_t + t for z in range(n_z)] if z_outer else [t * n_z + z for z in range(n_z)]
            if len(s.pages) == n_t * n_z and all(p is not None and len(p.shape) == 2 for p in s.pages[:1]):
                vol = np.asarray(tif.asarray(key=pages, series=0))
                vol = vol.reshape(n_z, *vol.shape[-2:])
            else:  # pages that are not single planes: read the whole stack
                data = np.asarray(s.asarray())
                data = data.reshape([n for n in data.shape if n != 1])
                vol = data[:, t] if z_outer else data[t]
    except Exception as e:  # tifffile raises several types for broken files
        raise UserError(f"{path}: cannot read as a TIFF file ({e})") from None
    return tiff_to_frame(vol)
