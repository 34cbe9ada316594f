"""The original's ``render_sdf_*.m``: an isosurface picture per frame of SDF files, drawn with matplotlib.

Per frame (the two variants of the original, every number an option): the
mask ``sdf <= threshold`` as a 0/255 volume, resized to 256³, smoothed with a
Gaussian (MATLAB ``imgaussfilt3``), and its isosurface at 192 drawn in a 3D
box whose axes run from −1 to 1 (the grid's coordinates,
:mod:`autodecoder.experiment.geometry`):

* ``cele``: ``sdf <= 0``, linear resize, σ = 7;
* ``filo``: ``sdf <= 0.035``, nearest-neighbour resize, σ = 2.

As MATLAB's ``isosurface`` draws an array, the plot's x axis is the array's
SECOND axis (columns, the SDF's ``Y``), y its first (rows, ``X``), z the
slices (``Z``); the camera is MATLAB's default 3D view (azimuth −37.5°,
elevation 30°). Files: ``<out>/<file stem>/<file stem>_tNNN.png``. The command line is
``matlab_ports/render_sdf.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.colors import LightSource, to_rgb
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from skimage.measure import marching_cubes

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.geometry import index_to_coords
from autodecoder.io.discovery import each_sdf_file
from autodecoder.io.exports import FILO_THRESHOLD, frame_name, masks_from_sdf
from autodecoder.io.matlab_compat import imgaussfilt3, imresize3
from autodecoder.io.pictures import plt, save_figure

__all__ = ["VARIANTS", "RenderSettings", "render_volume", "isosurface", "render_frame", "render_sdf"]

#: MATLAB's default 3D view, as matplotlib angles (MATLAB measures azimuth from −y, matplotlib from +x).
MATLAB_AZIMUTH, MATLAB_ELEVATION = -37.5, 30.0


@dataclass(frozen=True)
class RenderSettings:
    """Settings of one ``render_sdf_*.m`` script and of the picture.

    Attributes:
        threshold: the cell is ``sdf <= threshold``.
        size: edge of the resize (None: keep the SDF grid).
        method: ``"linear"`` or ``"nearest"`` resize (MATLAB ``imresize3`` sampling).
        sigma: Gaussian σ in voxels of the resized volume (0: none).
        level: isovalue on the 0–255 volume.
        step: marching-cubes step (1 = every voxel, as MATLAB; 2 draws about a quarter of the triangles).
        dpi, inches: picture resolution and size.
        color: surface colour.
    """

    threshold: float
    size: int | None
    method: str
    sigma: float
    level: float = 192.0
    step: int = 1
    dpi: int = 100
    inches: float = 6.0
    color: str = "#d95f02"


VARIANTS = {
    "cele": RenderSettings(threshold=0.0, size=256, method="linear", sigma=7.0),
    "filo": RenderSettings(threshold=FILO_THRESHOLD, size=256, method="nearest", sigma=2.0),
}


def render_volume(sdf_xyz: np.ndarray, s: RenderSettings) -> np.ndarray:
    """The 0–255 float32 volume whose ``s.level`` isosurface is drawn (threshold, resize, smooth)."""
    vol = masks_from_sdf(sdf_xyz, s.threshold).astype(np.float32) * np.float32(255)
    if s.size is not None:
        vol = imresize3(vol, output_size=(s.size,) * 3, method=s.method)
    if s.sigma > 0:
        vol = imgaussfilt3(vol, s.sigma)
    return vol.astype(np.float32, copy=False)


def isosurface(volume: np.ndarray, level: float, step: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
    """Vertices (in [-1, 1] grid coordinates, array axis order) and faces of ``volume == level``; None if none."""
    v = np.asarray(volume, dtype=np.float32)
    if not (v.min() < level < v.max()):
        return None
    padded = np.pad(v, 1, mode="constant", constant_values=min(float(v.min()), level - 1.0))
    verts, faces, _, _ = marching_cubes(padded, level=level, step_size=max(int(step), 1), allow_degenerate=False)
    verts = index_to_coords(verts - 1.0, v.shape)
    return verts, faces


def render_frame(volume: np.ndarray, s: RenderSettings, path: Path, title: str = "") -> Path:
    """Draw the isosurface of one 0–255 volume with MATLAB's axis conventions and write a PNG."""
    fig = plt.figure(figsize=(s.inches, s.inches), dpi=s.dpi)
    ax = fig.add_subplot(projection="3d")
    surf = isosurface(volume, s.level, s.step)
    if surf is not None:
        verts, faces = surf
        # MATLAB's isosurface(V): x = columns (axis 1), y = rows (axis 0), z = slices (axis 2).
        # (scikit-image's faces wind inward in array order; the axis swap mirrors them outward.)
        xyz = verts[:, [1, 0, 2]]
        tri = xyz[faces]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        norm = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = normals / np.where(norm > 0, norm, 1)
        light = LightSource(azdeg=225.0, altdeg=45.0)
        rgb = np.array(to_rgb(s.color))
        shade = light.shade_normals(normals, fraction=1.0)
        colors = np.clip(rgb[None, :] * (0.35 + 0.65 * shade[:, None]), 0, 1)
        ax.add_collection3d(Poly3DCollection(tri, facecolors=colors, edgecolors="none", linewidths=0))
    else:
        ax.text2D(0.5, 0.5, "no surface (empty frame)", transform=ax.transAxes, ha="center")
    ticks = [-1, -0.5, 0, 0.5, 1]
    for setter, tick_setter, label in ((ax.set_xlim, ax.set_xticks, ax.set_xlabel),
                                       (ax.set_ylim, ax.set_yticks, ax.set_ylabel),
                                       (ax.set_zlim, ax.set_zticks, ax.set_zlabel)):
        setter(-1, 1)
        tick_setter(ticks)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=MATLAB_ELEVATION, azim=-90.0 + MATLAB_AZIMUTH)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def render_sdf(files: Sequence[str | Path], out: str | Path | None = None, settings: RenderSettings = VARIANTS["cele"],
               progress: bool = True) -> list[Path]:
    """Render every frame of SDF files (or folders of them); returns the PNGs written.

    Files go to ``<out>/<file stem>/<file stem>_tNNN.png`` (default ``out``:
    ``render/`` next to each file).
    """
    if settings.method not in ("linear", "nearest", "cubic"):
        raise UserError(f"--method {settings.method!r}: expected linear, nearest or cubic")
    if settings.size is not None and settings.size < 2:
        raise UserError(f"--size must be at least 2 voxels or 'none', got {settings.size}")
    if settings.sigma < 0 or settings.step < 1 or settings.dpi < 10:
        raise UserError("--sigma must be >= 0, --step >= 1 and --dpi >= 10")
    written: list[Path] = []
    for p, seq, dest, bar in each_sdf_file(files, out, "render", progress):
        for t, frame in enumerate(seq.frames()):
            vol = render_volume(frame, settings)
            written.append(render_frame(vol, settings, dest / frame_name(p.stem, t, "png"),
                                        title=f"{p.stem}  t = {t:03d}"))
            bar.update(1)
    return written
