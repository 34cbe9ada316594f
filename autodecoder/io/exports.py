"""Outputs people open: binary TIFF masks, ImageJ hyperstacks, MIP previews and meshes of SDF sequences.

Shared by ``test.py --tif/--png/--mesh`` and the MATLAB-script ports in
``matlab_ports/`` (``quick_preview.py``, ``sdf_to_tif.py``, ``voxvol_to_sdf.py``),
so that every tool writes the same files the same way.

Conventions
-----------
* An SDF frame is float32 ``(X, Y, Z)``, a sequence ``(T, X, Y, Z)``, negative
  inside the cell (docs/method.md §1). A mask is ``sdf <= threshold`` (``threshold`` 0,
  or 0.035 for filopodial cells as the original's filopodial scripts use).
* **TIFF orientation.** ``X, Y, Z`` are MATLAB's (rows, columns, slices):
  the original preparation script reads a mask TIFF as ``(rows, columns,
  pages)``, while tifffile reads the same file as ``(pages, rows, columns)``;
  the port of that script turns a tifffile volume into a frame with
  :func:`tiff_to_frame` (``transpose(1, 2, 0)``). Everything written here uses
  the inverse, :func:`frame_to_tiff` (``transpose(2, 0, 1)``): TIFF pages are
  ``Z``, image rows are ``X`` and image columns are ``Y``. So a cell prepared
  from mask TIFFs, reconstructed and exported shows in Fiji exactly as its
  input masks did (Fiji's horizontal x axis is the SDF's ``Y`` axis, Fiji's
  vertical y axis the SDF's ``X`` axis, Fiji's slices ``Z``).
* **Voxel size** ``voxel_size = (vx, vy, vz)`` is in µm along the SDF axes
  ``X, Y, Z`` (not Fiji's x, y). In TIFFs it becomes ImageJ calibration:
  pixel width (Fiji x) ``vy``, pixel height (Fiji y) ``vx``, slice spacing
  ``vz``, unit ``um``. Without a voxel size nothing is calibrated (Fiji shows
  pixels).
* Binary TIFFs are uint8 with 0 (outside) and 255 (inside), Fiji's binary
  convention. MIP previews are the maximum projection along ``Z`` (rows ``X``,
  columns ``Y``), what Fiji's Z projection of the exported TIFF shows, and
  what the original's ``quick_preview.m`` writes.
* Frames are numbered from 0 in file names: ``<stem>_tNNN.<ext>``.

Layout written by :func:`export_sequence` for an SDF file ``<stem>.h5``::

    <out_dir>/<stem>/tif/<stem>_tNNN.tif        one binary volume per frame (Z, X, Y pages)
    <out_dir>/<stem>/tif/<stem>_hyperstack.tif  all frames, ImageJ hyperstack, axes TZYX
    <out_dir>/<stem>/png/<stem>_tNNN.png        MIP along Z per frame
    <out_dir>/<stem>/png/<stem>_sheet.png       contact sheet of all frames' MIPs
    <out_dir>/<stem>/mesh/<stem>_tNNN.<ply|obj|stl>  zero-level (threshold) surface per frame

Frames are read one at a time, so memory does not grow with the number of
frames; every file is written atomically (a temporary name, then a rename).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import tifffile
import trimesh
from skimage.measure import marching_cubes
from tqdm import tqdm

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.geometry import index_to_coords
from autodecoder.experiment.guards import atomic_path
from autodecoder.io.pictures import contact_sheet, mip, save_image
from autodecoder.io.sequences import SequenceFile

__all__ = [
    "MESH_FORMATS", "MESH_UNITS", "FILO_THRESHOLD",
    "masks_from_sdf", "frame_to_tiff", "tiff_to_frame", "frame_name",
    "write_tif_frame", "write_hyperstack",
    "write_png_previews", "mesh_from_sdf", "write_mesh", "write_meshes",
    "export_sequence", "check_voxel_size", "check_mesh_options",
]

#: Mesh file formats (written by trimesh).
MESH_FORMATS = ("ply", "obj", "stl")
#: Mesh vertex coordinates: the grid's [-1, 1] cube, voxel indices, or µm (needs a voxel size).
MESH_UNITS = ("normalised", "voxels", "um")
#: The threshold of the original's filopodial scripts (``sdf <= 0.035``).
FILO_THRESHOLD = 0.035


# --------------------------------------------------------------------------
# masks and orientation

def masks_from_sdf(sdf: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """``sdf <= threshold`` as a bool array of the same shape (``(X, Y, Z)`` or ``(T, X, Y, Z)``)."""
    return np.asarray(sdf) <= np.float32(threshold)


def frame_to_tiff(frame_xyz: np.ndarray) -> np.ndarray:
    """An ``(X, Y, Z)`` frame as the ``(Z, X, Y)`` page stack a TIFF stores (pages, rows, columns)."""
    a = np.asarray(frame_xyz)
    if a.ndim != 3:
        raise ValueError(f"expected an (X, Y, Z) volume, got shape {a.shape}")
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def tiff_to_frame(volume_zrc: np.ndarray) -> np.ndarray:
    """A TIFF volume as tifffile reads it, ``(pages, rows, columns)``, as an ``(X, Y, Z)`` frame.

    This is MATLAB's view of the same file, ``(rows, columns, slices)``:
    ``transpose(1, 2, 0)``, the inverse of :func:`frame_to_tiff`.
    """
    a = np.asarray(volume_zrc)
    if a.ndim != 3:
        raise ValueError(f"expected a (pages, rows, columns) volume, got shape {a.shape}")
    return a.transpose(1, 2, 0)


def frame_name(stem: str, t: int, ext: str) -> str:
    """``<stem>_tNNN.<ext>`` (frames numbered from 0)."""
    return f"{stem}_t{t:03d}.{ext.lstrip('.')}"


def check_voxel_size(voxel_size: Sequence[float] | None) -> tuple[float, float, float] | None:
    """Validate ``(vx, vy, vz)`` in µm (all positive and finite); ``None`` stays ``None``."""
    if voxel_size is None:
        return None
    v = tuple(float(x) for x in voxel_size)
    if len(v) != 3 or not all(np.isfinite(x) and x > 0 for x in v):
        raise UserError(f"voxel size must be three positive numbers (µm along X, Y, Z), got {voxel_size!r}")
    return v  # type: ignore[return-value]


def check_mesh_options(fmt: str | None, units: str, voxel_size: Sequence[float] | None
                       ) -> tuple[str | None, tuple[float, float, float] | None]:
    """Validate the mesh options of ``test.py`` and :func:`export_sequence`; returns ``(fmt, voxel_size)``
    (the format lower-cased, the voxel size as :func:`check_voxel_size` gives it).

    Args:
        fmt: one of :data:`MESH_FORMATS` (any case), or None (no meshes).
        units: one of :data:`MESH_UNITS`; ``"um"`` needs ``voxel_size``.
        voxel_size: ``(vx, vy, vz)`` in µm along ``X, Y, Z``, or None.

    Raises:
        UserError: an unknown format or unit, a bad voxel size, or ``"um"`` without a voxel size.
    """
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in MESH_FORMATS:
            raise UserError(f"mesh format {fmt!r}: expected one of {', '.join(MESH_FORMATS)}")
    if units not in MESH_UNITS:
        raise UserError(f"mesh units {units!r}: expected one of {', '.join(MESH_UNITS)}")
    vs = check_voxel_size(voxel_size)
    if units == "um" and vs is None:
        raise UserError("mesh units 'um' need a voxel size (--voxel-size, µm along X, Y, Z)")
    return fmt, vs


def _imagej_calibration(voxel_size: tuple[float, float, float] | None) -> dict:
    """tifffile keyword arguments calibrating an ImageJ file (see the module docstring)."""
    if voxel_size is None:
        return {}
    vx, vy, vz = voxel_size
    # TIFF XResolution is along image columns (SDF Y), YResolution along rows (SDF X)
    return {"resolution": (1.0 / vy, 1.0 / vx), "metadata_extra": {"spacing": vz, "unit": "um"}}


def _binary_u8(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask, dtype=bool).astype(np.uint8) * np.uint8(255)


# --------------------------------------------------------------------------
# TIFF

def write_tif_frame(mask_xyz: np.ndarray, path: Path,
                    voxel_size: tuple[float, float, float] | None = None) -> Path:
    """Write one binary volume as an ImageJ TIFF (axes ZYX, uint8 0/255), oriented as described above.

    Args:
        mask_xyz: bool ``(X, Y, Z)``; True inside.
        path: the ``.tif`` file (written atomically).
        voxel_size: ``(vx, vy, vz)`` in µm along ``X, Y, Z``, or None.
    """
    cal = _imagej_calibration(check_voxel_size(voxel_size))
    meta = {"axes": "ZYX", **cal.get("metadata_extra", {})}
    with atomic_path(Path(path)) as tmp:
        tifffile.imwrite(tmp, frame_to_tiff(_binary_u8(mask_xyz)), imagej=True, metadata=meta,
                         resolution=cal.get("resolution"), photometric="minisblack")
    return Path(path)


def write_hyperstack(masks: Iterable[np.ndarray], n_frames: int, grid_shape: Sequence[int], path: Path,
                     voxel_size: tuple[float, float, float] | None = None) -> Path:
    """All frames as one ImageJ hyperstack: uint8 0/255, axes ``TZYX`` (T frames, Z slices).

    Frames are consumed one at a time from ``masks`` (bool ``(X, Y, Z)`` each,
    ``n_frames`` of them, of shape ``grid_shape``) and streamed to disk, so
    memory holds one frame. tifffile reads the file back as
    ``(T, Z, X, Y)``; ``imagej_metadata`` holds ``frames``, ``slices`` and,
    with a voxel size, ``spacing`` (µm between slices) and ``unit``.
    """
    x, y, z = (int(n) for n in grid_shape)
    cal = _imagej_calibration(check_voxel_size(voxel_size))
    meta = {"axes": "TZYX", **cal.get("metadata_extra", {})}
    count = [0]

    def pages() -> Iterator[np.ndarray]:
        for m in masks:
            m = np.asarray(m)
            if m.shape != (x, y, z):
                raise ValueError(f"frame {count[0]}: shape {m.shape} != grid {(x, y, z)}")
            vol = frame_to_tiff(_binary_u8(m))
            count[0] += 1
            yield from vol
        if count[0] != n_frames:
            raise ValueError(f"{path}: got {count[0]} frames, expected {n_frames}")

    with atomic_path(Path(path)) as tmp:
        tifffile.imwrite(tmp, pages(), shape=(n_frames, z, x, y), dtype=np.uint8, imagej=True,
                         metadata=meta, resolution=cal.get("resolution"), photometric="minisblack")
    return Path(path)


# --------------------------------------------------------------------------
# PNG

def write_png_previews(masks: Iterable[np.ndarray], out_dir: Path, stem: str, sheet: bool = True,
                       columns: int | None = None) -> list[Path]:
    """A maximum projection along Z per frame, ``<stem>_tNNN.png``, and a contact sheet ``<stem>_sheet.png``.

    ``masks`` yields bool ``(X, Y, Z)`` frames; each PNG is ``X`` rows by
    ``Y`` columns, white (255) where the cell is.
    """
    out_dir = Path(out_dir)
    written, images = [], []
    for t, m in enumerate(masks):
        img = mip(m)
        save_image(img, out_dir / frame_name(stem, t, "png"))
        written.append(out_dir / frame_name(stem, t, "png"))
        if sheet:
            images.append(img)
    if sheet and images:
        path = out_dir / f"{stem}_sheet.png"
        contact_sheet(images, path, columns=columns or min(len(images), 6))
        written.append(path)
    return written


# --------------------------------------------------------------------------
# meshes

def mesh_from_sdf(sdf_xyz: np.ndarray, level: float = 0.0, units: str = "normalised",
                  voxel_size: tuple[float, float, float] | None = None):
    """The ``sdf == level`` surface of one frame as a closed ``trimesh.Trimesh`` (None if there is none).

    Marching cubes (scikit-image, Lewiner) on the frame padded by one voxel
    of "outside" value, so a cell touching the grid border still gives a
    closed (watertight) surface; faces are oriented with outward normals (the
    volume is positive). Vertex coordinates are ``(x, y, z)`` along the SDF
    axes ``(X, Y, Z)``:

    * ``"normalised"``: the grid's coordinates, voxel ``i`` of ``N`` at
      ``(i/(N-1) - 0.5)·2`` (:func:`autodecoder.experiment.geometry.index_to_coords`), so the grid
      spans [-1, 1];
    * ``"voxels"``: voxel indices (0 … N-1);
    * ``"um"``: voxel indices times ``voxel_size`` (µm).

    Raises:
        UserError: unknown ``units``, or ``"um"`` without a voxel size.
    """
    _, vs = check_mesh_options(None, units, voxel_size)
    f = np.asarray(sdf_xyz, dtype=np.float32)
    if f.ndim != 3:
        raise ValueError(f"expected an (X, Y, Z) SDF frame, got shape {f.shape}")
    level = float(level)
    inside = f <= level
    if not inside.any() or inside.all():
        return None
    outside_value = level + max(float(np.abs(f).max()), 1e-6)
    padded = np.pad(f, 1, mode="constant", constant_values=outside_value)
    verts, faces, _, _ = marching_cubes(padded, level=level, gradient_direction="ascent",
                                        allow_degenerate=False)
    verts = verts.astype(np.float64) - 1.0
    if units == "normalised":
        verts = index_to_coords(verts, f.shape)
    elif units == "um":
        verts = verts * np.asarray(vs, dtype=np.float64)
    mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=True)
    if mesh.volume < 0:  # defensive: keep outward normals whatever the marching-cubes convention
        mesh.invert()
    return mesh


def write_mesh(sdf_xyz: np.ndarray, path: Path, level: float = 0.0, units: str = "normalised",
               voxel_size: tuple[float, float, float] | None = None) -> Path | None:
    """Write the ``sdf == level`` surface of one frame (format from the suffix of ``path``).

    Returns the path, or None (with a warning) if the frame has no surface
    (nothing inside, or everything inside).
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in MESH_FORMATS:
        raise UserError(f"{path}: mesh format {fmt!r}; expected one of {', '.join(MESH_FORMATS)}")
    mesh = mesh_from_sdf(sdf_xyz, level, units, voxel_size)
    if mesh is None:
        warnings.warn(f"{path.name}: no surface at level {level:g} (the frame is empty or full); no mesh written",
                      stacklevel=2)
        return None
    data = mesh.export(file_type=fmt)
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
    return path


def write_meshes(sdf_frames: Iterable[np.ndarray], out_dir: Path, stem: str, fmt: str = "ply",
                 units: str = "normalised", voxel_size: tuple[float, float, float] | None = None,
                 level: float = 0.0) -> list[Path]:
    """One mesh per frame, ``<out_dir>/<stem>_tNNN.<fmt>``; ``sdf_frames`` yields float ``(X, Y, Z)`` frames."""
    written = []
    for t, frame in enumerate(sdf_frames):
        p = write_mesh(frame, Path(out_dir) / frame_name(stem, t, fmt), level, units, voxel_size)
        if p is not None:
            written.append(p)
    return written


# --------------------------------------------------------------------------
# one entry point

def export_sequence(sdf_path: Path, out_dir: Path, tif: bool = False, png: bool = False,
                    mesh: str | None = None, threshold: float = 0.0, units: str = "normalised",
                    voxel_size: tuple[float, float, float] | None = None,
                    progress: bool = False) -> list[Path]:
    """Write the requested exports of one SDF file (``.h5`` or ``.mat``) into ``<out_dir>/<stem>/``.

    Args:
        sdf_path: an SDF sequence file, read frame by frame with
            :class:`autodecoder.io.SequenceFile`.
        out_dir: the exports go to ``out_dir/<sdf_path stem>/`` (see the
            module docstring for the layout): ``tif/``, ``png/``, ``mesh/``.
        tif: binary TIFF per frame and one ImageJ hyperstack (``TZYX``).
        png: MIP preview per frame and a contact sheet.
        mesh: ``"ply"``, ``"obj"``, ``"stl"`` or None: a surface per frame.
        threshold: the cell is ``sdf <= threshold`` (masks) and the mesh is
            the ``sdf == threshold`` surface; 0 by default, 0.035 for
            filopodial cells (:data:`FILO_THRESHOLD`).
        units: mesh coordinates, one of :data:`MESH_UNITS`.
        voxel_size: ``(vx, vy, vz)`` µm along ``X, Y, Z``: calibrates the
            TIFFs, and is needed for ``units="um"``.
        progress: show a progress bar over frames.

    Returns:
        Every file written, in the order written.

    Raises:
        UserError: a bad argument or an unreadable SDF file (naming it).
    """
    sdf_path, out_dir = Path(sdf_path), Path(out_dir)
    mesh, voxel_size = check_mesh_options(mesh, units, voxel_size)
    if not np.isfinite(threshold):
        raise UserError(f"threshold must be a finite number, got {threshold!r}")
    if not (tif or png or mesh):
        return []

    written: list[Path] = []
    with SequenceFile(sdf_path) as seq:
        bar = tqdm(total=seq.n_frames, desc=f"export {sdf_path.name}", unit="frame", disable=not progress,
                   dynamic_ncols=True)
        frames = _FrameExports(out_dir / sdf_path.stem, sdf_path.stem, tif, png, mesh, threshold, units, voxel_size,
                               written)
        try:
            masks = frames.each(seq, bar)
            if tif:
                written.append(write_hyperstack(masks, seq.n_frames, seq.grid_shape,
                                                frames.base / "tif" / f"{frames.stem}_hyperstack.tif", voxel_size))
            else:
                for _ in masks:
                    pass
        finally:
            bar.close()
        if png:
            sheet = frames.base / "png" / f"{frames.stem}_sheet.png"
            contact_sheet(frames.images, sheet, columns=min(len(frames.images), 6))
            written.append(sheet)
    return written


@dataclass
class _FrameExports:
    """The per-frame files of :func:`export_sequence`, written as the frames are read; each file
    written is appended to ``written``, each MIP kept in ``images`` for the contact sheet."""

    base: Path
    stem: str
    tif: bool
    png: bool
    mesh: str | None
    threshold: float
    units: str
    voxel_size: tuple[float, float, float] | None
    written: list[Path]
    images: list[np.ndarray] = field(default_factory=list)

    def each(self, seq: SequenceFile, bar: tqdm) -> Iterator[np.ndarray]:
        """Write the files of every frame of ``seq``; yield each bool ``(X, Y, Z)`` mask (for the hyperstack)."""
        for t in range(seq.n_frames):
            frame = seq.frame(t)
            m = masks_from_sdf(frame, self.threshold)
            if self.tif:
                self.written.append(write_tif_frame(m, self.base / "tif" / frame_name(self.stem, t, "tif"),
                                                    self.voxel_size))
            if self.png:
                img = mip(m)
                save_image(img, self.base / "png" / frame_name(self.stem, t, "png"))
                self.written.append(self.base / "png" / frame_name(self.stem, t, "png"))
                self.images.append(img)
            if self.mesh:
                p = write_mesh(frame, self.base / "mesh" / frame_name(self.stem, t, self.mesh), self.threshold,
                               self.units, self.voxel_size)
                if p is not None:
                    self.written.append(p)
            bar.update(1)
            yield m
