"""Per-cell descriptor vectors: what a whole cell sequence looks like, as one row of numbers.

Generative-shape measures (:mod:`autodecoder.evaluation.generative`) compare sets of cells, one
vector per cell. A cell here is a sequence of masks ``(T, X, Y, Z)`` (voxels, unit cubes; frames
evenly spaced). Its vector (:func:`cell_vector`, names :func:`vector_names`) holds

* for every per-frame descriptor of :data:`SUMMARISED` (:mod:`autodecoder.evaluation.descriptors`,
  voxel units) and for the number of thin protrusions (:func:`count_protrusions`), four summaries
  over time: ``start`` (frame 0), ``end`` (the last frame), ``mean`` over frames and ``slope`` (least
  squares, per frame);
* ``relative_growth_rate``: the volume's slope over the first frame's volume (per frame);
* ``division_frame``: the first frame with more components (of at least ``min_component_voxels``)
  than frame 0, and ``T`` (one past the last frame) when the cell does not divide: "no division" is
  a value of its own, the latest possible.

A frame without any inside voxel has no surface, axes or hull: its descriptors count as 0 (an empty
frame is as far from a cell as these descriptors can say), so every vector is finite.

Thin protrusions (filopodia, thin bridges): the voxels of the mask that a morphological opening with
a ball of radius ``radius`` voxels removes (parts thinner than ``2·radius + 1`` voxels), as
26-connected components that reach at least ``reach`` voxels away from what the opening keeps (the
body). The staircase of a voxelised surface also loses voxels to the opening — along a straight,
grid-aligned tube they even join into long components — but those lie within about a voxel of
the body, so the reach tells them from protrusions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from autodecoder.evaluation import descriptors as desc

__all__ = ["SUMMARISED", "SUMMARIES", "PROTRUSION_RADIUS", "PROTRUSION_REACH", "MIN_COMPONENT_VOXELS",
           "count_protrusions", "frame_table", "cell_vector", "vector_names", "describe_cell", "vectors", "LABELS"]

#: Per-frame descriptors summarised over time (the Euler characteristic follows from the components
#: for these cells, which have no tunnels; the components enter through the division frame).
SUMMARISED = ("volume", "surface_area", "sphericity", "surface_to_volume", "axis_major", "axis_middle",
              "axis_minor", "elongation", "flatness", "solidity", "protrusions")
SUMMARIES = ("start", "end", "mean", "slope")
#: Ball radius (voxels) of the opening that finds thin protrusions: thinner than 5 voxels across.
PROTRUSION_RADIUS = 2
#: How far (voxels) a protrusion must reach beyond the body to count.
PROTRUSION_REACH = 3.0
#: Smallest component counted when looking for a division (voxels): specks are not daughters.
MIN_COMPONENT_VOXELS = 10
_FULL = np.ones((3, 3, 3), dtype=bool)

#: Readable names of the vector's entries.
LABELS: dict[str, str] = {**{f"{d}_{s}": f"{desc.LABELS[d][0] if d in desc.LABELS else 'thin protrusions'}, {s}"
                             for d in SUMMARISED for s in SUMMARIES},
                          "relative_growth_rate": "relative growth rate", "division_frame": "division frame"}


def _ball(radius: int) -> np.ndarray:
    g = np.arange(-radius, radius + 1)
    return (g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2) <= radius * radius


def count_protrusions(mask: np.ndarray, radius: int = PROTRUSION_RADIUS, reach: float = PROTRUSION_REACH) -> int:
    """Number of thin protrusions of a 3-D bool mask ``(X, Y, Z)`` (module docstring)."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 3:
        raise ValueError(f"expected a 3-D (X, Y, Z) mask, got shape {m.shape}")
    if radius < 1 or not reach > 0:
        raise ValueError(f"radius must be >= 1 and reach > 0, got {radius} and {reach}")
    if not m.any():
        return 0
    pad = radius + 1  # the opening treats outside the array as background
    p = np.pad(m, pad)
    body = ndi.binary_opening(p, structure=_ball(radius))
    thin = p & ~body
    labels, n = ndi.label(thin, structure=_FULL)
    if n == 0:
        return 0
    if not body.any():  # all of it is thin: every piece is a protrusion
        return int(n)
    far = ndi.distance_transform_edt(~body)  # voxels to the body
    return int((ndi.maximum(far, labels, np.arange(1, n + 1)) >= reach).sum())


def frame_table(masks: np.ndarray, min_component_voxels: int = MIN_COMPONENT_VOXELS) -> dict[str, np.ndarray]:
    """Per-frame descriptors of a ``(T, X, Y, Z)`` bool sequence: name → float64 ``(T,)`` for
    :data:`SUMMARISED` and ``components``; empty frames' undefined descriptors are 0."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 4 or masks.shape[0] == 0:
        raise ValueError(f"expected a (T, X, Y, Z) mask sequence, got shape {masks.shape}")
    rows = [desc.frame_descriptors(m, min_component_voxels=min_component_voxels) for m in masks]
    out = {name: np.array([r[name] for r in rows], dtype=np.float64)
           for name in SUMMARISED + ("components",) if name != "protrusions"}
    out["protrusions"] = np.array([count_protrusions(m) for m in masks], dtype=np.float64)
    return {k: np.nan_to_num(v, nan=0.0) for k, v in out.items()}


def _slope(v: np.ndarray) -> float:
    return float(np.polyfit(np.arange(len(v), dtype=float), v, 1)[0]) if len(v) >= 2 else 0.0


def cell_vector(table: dict[str, np.ndarray]) -> dict[str, float]:
    """The cell's vector (:func:`vector_names` order) from its :func:`frame_table`."""
    n = len(table["volume"])
    out: dict[str, float] = {}
    for name in SUMMARISED:
        v = table[name]
        out.update({f"{name}_start": float(v[0]), f"{name}_end": float(v[-1]), f"{name}_mean": float(v.mean()),
                    f"{name}_slope": _slope(v)})
    first = table["volume"][0]
    out["relative_growth_rate"] = _slope(table["volume"]) / first if first > 0 else 0.0
    div = desc.division_frame(int(c) for c in table["components"])
    out["division_frame"] = float(n if div is None else div)
    return out


def vector_names() -> tuple[str, ...]:
    """The entries of :func:`cell_vector`, in order."""
    return tuple(f"{d}_{s}" for d in SUMMARISED for s in SUMMARIES) + ("relative_growth_rate", "division_frame")


def describe_cell(masks: np.ndarray) -> np.ndarray:
    """The vector of a ``(T, X, Y, Z)`` bool sequence as float64 ``(len(vector_names()),)``."""
    v = cell_vector(frame_table(masks))
    return np.array([v[k] for k in vector_names()], dtype=np.float64)


def vectors(cells: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`describe_cell` of every sequence → float64 ``(cells, entries)``."""
    if len(cells) == 0:
        return np.zeros((0, len(vector_names())))
    return np.stack([describe_cell(c) for c in cells])
