"""The 2-D benchmark: maximum-intensity projections along Z of images and instance labels.

Per frame, ``img_tNNN.tif`` is the maximum of the image over Z (uint16 (Y, X)) and
``mask_tNNN.tif`` the projected instance labels (uint16 (Y, X)). Rule for the labels, where
cells overlap in projection: each pixel takes the label of the labelled voxel of its column
with the highest image intensity (ties: the smallest z), so the mask shows the cell that the
projected image shows; pixels whose column holds no labelled voxel are 0. Without an image,
the labelled voxel with the smallest z index wins. Frame numbers have 3 digits (4 beyond
1000 frames), as in the CTC layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from autodecoder.experiment.errors import UserError
from autodecoder.microscopy.ctc import as_uint16, frame_digits, write_tiff


def max_intensity_projection(image: NDArray) -> NDArray[np.uint16]:
    """(Z, Y, X) integer intensities -> uint16 (Y, X): the maximum over Z."""
    return as_uint16(image, "image").max(axis=0)


def project_labels(labels: NDArray, image: NDArray | None = None) -> NDArray[np.uint16]:
    """(Z, Y, X) instance labels -> uint16 (Y, X) by the module's rule (brightest labelled voxel).

    ``image``: (Z, Y, X) intensities of the same frame, or None (smallest z labelled voxel).
    """
    labels = as_uint16(labels, "labels")
    if image is None:
        score = np.zeros(labels.shape, dtype=np.float64)
    else:
        score = np.asarray(image, dtype=np.float64)
        if score.shape != labels.shape:
            raise UserError(f"image {score.shape} and labels {labels.shape}: expected one (Z, Y, X) shape")
    score = np.where(labels > 0, score, -np.inf)  # background voxels never win
    z = score.argmax(axis=0)  # argmax returns the first (smallest z) of equal maxima
    return np.take_along_axis(labels, z[None], axis=0)[0]


def write_projection_frame(folder: Path | str, t: int, image: NDArray, labels: NDArray,
                           n_frames: int = 1) -> tuple[Path, Path]:
    """Write ``img_tNNN.tif`` and ``mask_tNNN.tif`` of frame ``t`` into ``folder``; returns both paths.

    ``image``, ``labels``: (Z, Y, X); ``n_frames`` (the sequence length) fixes the padding.
    """
    if not 0 <= t < n_frames:
        raise UserError(f"frame {t}: expected 0..{n_frames - 1} (n_frames={n_frames})")
    number = f"{t:0{frame_digits(n_frames)}d}"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    img_path, mask_path = folder / f"img_t{number}.tif", folder / f"mask_t{number}.tif"
    write_tiff(img_path, max_intensity_projection(image))
    write_tiff(mask_path, project_labels(labels, image))
    return img_path, mask_path
