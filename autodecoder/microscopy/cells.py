"""The cells of a synthesis: shapes that give an SDF anywhere in the model's cube at any time.

Two sources, one interface (:class:`Cell`):

* :class:`ModelCell`: a code and rotation of a trained model, evaluated by the network directly
  at the points asked for (any voxel size, anisotropic included) — adaptive extraction where it
  pays (:func:`autodecoder.decoding.adaptive.decode_adaptive` with the box's own spacing), so the
  masks ``sdf <= threshold`` equal dense decoding and the network is evaluated only near the surface;
* :class:`FileCell`: an SDF sequence file (``.h5``/``.mat``) or a mask sequence (TIFF folders and
  stacks, turned into SDFs frame by frame as the data preparation does), whose grid spans the cube
  [-1, 1]³; resampled by trilinear interpolation in space and linear interpolation in time.

Coordinates are the model's ``(X, Y, Z)`` in [-1, 1] (SDF axis order); times are the cell's own,
in [-1, 1] from the start to the end of its life.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import map_coordinates

from autodecoder.decoding.adaptive import decode_adaptive, lipschitz_bound
from autodecoder.decoding.points import PointDecoder
from autodecoder.decoding.trained import TrainedModel
from autodecoder.io.discovery import SequenceSource, frame_volumes
from autodecoder.io.mask_sdf import mask_to_sdf
from autodecoder.model.points import rotation_matrices

#: Voxels per axis of the coarse grid that bounds a cell (its largest extent over its life).
BOUND_GRID = 24
#: Times at which the bound is measured (evenly over the life).
BOUND_TIMES = 7


class Cell:
    """A shape over time. Subclasses give :meth:`sdf_box`; the rest follows."""

    name: str = "cell"

    def sdf_box(self, axes: tuple[np.ndarray, np.ndarray, np.ndarray], time: float,
                levels: tuple[float, ...]) -> np.ndarray:
        """float32 ``(len(axes[0]), len(axes[1]), len(axes[2]))``: the SDF on the box grid whose model
        coordinates along X, Y, Z are ``axes`` (evenly spaced), at ``time``; masks ``sdf <= level`` exact
        for ``levels``."""
        raise NotImplementedError

    def canonical(self, points: np.ndarray) -> np.ndarray:
        """Model coordinates (m, 3) in the shape's own frame (where its texture is attached)."""
        return points

    def info(self) -> dict[str, Any]:
        """What ``synthesis.json`` records of this cell."""
        return {"name": self.name}

    def bound(self, threshold: float) -> float:
        """The largest distance from the cube's centre of any inside point over the cell's life,
        in model units, plus half a coarse voxel's diagonal (the bounding sphere of the scene)."""
        axis = np.linspace(-1, 1, BOUND_GRID, dtype=np.float32)
        x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
        radius = np.sqrt(x * x + y * y + z * z)
        reach = 0.0
        for t in np.linspace(-1, 1, BOUND_TIMES):
            inside = self.sdf_box((axis, axis, axis), float(t), (threshold,)) <= threshold
            if inside.any():
                reach = max(reach, float(radius[inside].max()))
        return reach + float(np.sqrt(3) / (BOUND_GRID - 1))  # half a coarse voxel's diagonal


class ModelCell(Cell):
    """A cell of a trained model: its code (CodeLength,) and rotation angles (3,), evaluated by the network."""

    def __init__(self, model: TrainedModel, code: np.ndarray, angles: np.ndarray, name: str,
                 adaptive: bool = True, origin: str = "") -> None:
        self.model, self.name, self.adaptive, self.origin = model, name, adaptive, origin
        self.code = np.asarray(code, np.float32)
        self.angles = np.asarray(angles, np.float32)
        self.rot = rotation_matrices(torch.as_tensor(self.angles)).numpy()  # the network's own convention
        opts = model.decode_options()
        self.points = PointDecoder(model.decoder, self.code, self.angles, (1, 1, 1), model.device,
                                   threads=opts["threads"], accel=opts["accel"])
        self.lipschitz = lipschitz_bound(model.specs["AdaptiveSafety"])

    def sdf_box(self, axes, time, levels):
        self.points.set_time(time)
        dims = tuple(len(a) for a in axes)
        grid = [np.asarray(a, np.float32) for a in axes]

        def evaluate(flat: np.ndarray) -> np.ndarray:
            i, j, k = np.unravel_index(flat, dims)
            return self.points.evaluate_points(np.stack([grid[0][i], grid[1][j], grid[2][k]], axis=1))

        if self.adaptive and min(dims) > 8:
            spacing = tuple(float(a[1] - a[0]) if len(a) > 1 else 0.0 for a in grid)
            return decode_adaptive(evaluate, dims, levels, self.lipschitz, spacing=spacing)
        return evaluate(np.arange(int(np.prod(dims)))).reshape(dims)

    def canonical(self, points):
        return np.asarray(points, np.float32) @ self.rot  # the rotation the network sees: the shape's own frame

    def info(self):
        return {"name": self.name, "source": "model", "origin": self.origin,
                "code": [float(c) for c in self.code], "rotation_angles": [float(a) for a in self.angles]}


class FileCell(Cell):
    """A cell from files: an SDF sequence, or a mask sequence turned into SDFs, on a grid spanning the cube."""

    def __init__(self, source: SequenceSource, name: str) -> None:
        self.source, self.name = source, name
        self.n_frames = source.n_frames
        self._frame = lru_cache(maxsize=2)(self._read)  # neighbouring frames, for the time interpolation

    def _read(self, t: int) -> np.ndarray:
        """Frame ``t`` as an SDF (X, Y, Z); a mask gets the clamp of the original's data (32 voxels of 256)."""
        _, volume = next(frame_volumes(self.source, [t]))
        if self.source.kind == "sdf":
            return volume
        return mask_to_sdf(np.asarray(volume) > 0, clamp=32.0 * (max(volume.shape) - 1) / 255)

    def sdf_box(self, axes, time, levels):
        pos = (float(time) + 1) / 2 * (self.n_frames - 1)
        t0 = int(np.floor(pos))
        t1, w = min(t0 + 1, self.n_frames - 1), pos - t0
        out = self._sample(self._frame(t0), axes)
        if w > 0 and t1 != t0:
            out = (1 - w) * out + w * self._sample(self._frame(t1), axes)
        return out.astype(np.float32)

    @staticmethod
    def _sample(frame: np.ndarray, axes) -> np.ndarray:
        """Trilinear interpolation of a frame (X, Y, Z) whose voxel centres span [-1, 1], on the box grid;
        outside the frame's grid the cell is absent (+1, the clamp)."""
        idx = [(np.asarray(a, np.float64) / 2 + 0.5) * (n - 1) for a, n in zip(axes, frame.shape)]
        coords = np.stack(np.meshgrid(*idx, indexing="ij"))
        return map_coordinates(frame, coords, order=1, mode="constant", cval=1.0)

    def info(self):
        return {"name": self.name, "source": self.source.kind, "paths": list(self.source.paths[:1]),
                "frames": self.n_frames}


def file_cells(sources: list[SequenceSource]) -> list[FileCell]:
    """The cells of ``--inputs`` (one per sequence found by :func:`autodecoder.io.discovery.collect_sequences`)."""
    return [FileCell(s, Path(s.name).stem or s.name) for s in sources]
