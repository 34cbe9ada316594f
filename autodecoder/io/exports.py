"""Outputs people open: binary TIFF masks, ImageJ hyperstacks, MIP previews and meshes of SDF sequences.

Shared by ``test.py --tif/--png/--mesh`` and the MATLAB-script ports in
``matlab_ports/`` (``quick_preview.py``, ``sdf_to_tif.py``, ``voxvol_to_sdf.py``),
so that every tool writes the same files the same way.

Conventions
-----------
* An SDF frame is float32 ``(X, Y, Z)``, a sequence ``(T, X, Y, Z)``, negative
  inside the cell (SPEC §1). A mask is ``sdf <= threshold`` (``threshold`` 0,
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
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.workspace import atomic_path

__all__ = [
    "MESH_FORMATS", "MESH_UNITS", "FILO_THRESHOLD",
    "masks_from_sdf", "frame_to_tiff", "tiff_to_frame", "frame_name",
    "write_tif_frame", "write_tif_frames", "write_hyperstack",
    "write_png_previews", "mesh_from_sdf", "write_mesh", "write_meshes",
    "export_sequence", "check_voxel_size", "parse_voxel_size",
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


def parse_voxel_size(text: str) -> tuple[float, float, float]:
    """A command-line voxel size: ``0.2`` (isotropic) or ``0.2,0.2,0.5`` (µm along X, Y, Z)."""
    import argparse
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected one or three numbers (µm), got {text!r}") from None
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or not all(np.isfinite(v) and v > 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected one or three positive numbers (µm), got {text!r}")
    return tuple(vals)  # type: ignore[return-value]


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
    import tifffile
    cal = _imagej_calibration(check_voxel_size(voxel_size))
    meta = {"axes": "ZYX", **cal.get("metadata_extra", {})}
    with atomic_path(Path(path)) as tmp:
        tifffile.imwrite(tmp, frame_to_tiff(_binary_u8(mask_xyz)), imagej=True, metadata=meta,
                         resolution=cal.get("resolution"), photometric="minisblack")
    return Path(path)


def write_tif_frames(masks: Iterable[np.ndarray], out_dir: Path, stem: str,
                     voxel_size: tuple[float, float, float] | None = None) -> list[Path]:
    """One binary TIFF per frame, ``<out_dir>/<stem>_tNNN.tif``; ``masks`` yields ``(X, Y, Z)`` bool frames."""
    return [write_tif_frame(m, Path(out_dir) / frame_name(stem, t, "tif"), voxel_size)
            for t, m in enumerate(masks)]


def write_hyperstack(masks: Iterable[np.ndarray], n_frames: int, grid_shape: Sequence[int], path: Path,
                     voxel_size: tuple[float, float, float] | None = None) -> Path:
    """All frames as one ImageJ hyperstack: uint8 0/255, axes ``TZYX`` (T frames, Z slices).

    Frames are consumed one at a time from ``masks`` (bool ``(X, Y, Z)`` each,
    ``n_frames`` of them, of shape ``grid_shape``) and streamed to disk, so
    memory holds one frame. tifffile reads the file back as
    ``(T, Z, X, Y)``; ``imagej_metadata`` holds ``frames``, ``slices`` and,
    with a voxel size, ``spacing`` (µm between slices) and ``unit``.
    """
    import tifffile
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
    from autodecoder.io.pictures import contact_sheet, mip, save_image
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
      ``(i/(N-1) - 0.5)·2`` (SPEC §1), so the grid spans [-1, 1];
    * ``"voxels"``: voxel indices (0 … N-1);
    * ``"um"``: voxel indices times ``voxel_size`` (µm).

    Raises:
        UserError: unknown ``units``, or ``"um"`` without a voxel size.
    """
    import trimesh
    from skimage.measure import marching_cubes

    if units not in MESH_UNITS:
        raise UserError(f"mesh units {units!r}: expected one of {', '.join(MESH_UNITS)}")
    vs = check_voxel_size(voxel_size)
    if units == "um" and vs is None:
        raise UserError("mesh units 'um' need a voxel size (µm along X, Y, Z)")
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
        n = np.array([max(s - 1, 1) for s in f.shape], dtype=np.float64)
        verts = (verts / n - 0.5) * 2.0
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
    from tqdm import tqdm

    from autodecoder.io.sequences import SequenceFile
    from autodecoder.io.pictures import contact_sheet, mip, save_image

    sdf_path, out_dir = Path(sdf_path), Path(out_dir)
    if mesh is not None:
        mesh = mesh.lower()
        if mesh not in MESH_FORMATS:
            raise UserError(f"mesh format {mesh!r}: expected one of {', '.join(MESH_FORMATS)}")
    if units not in MESH_UNITS:
        raise UserError(f"mesh units {units!r}: expected one of {', '.join(MESH_UNITS)}")
    voxel_size = check_voxel_size(voxel_size)
    if mesh is not None and units == "um" and voxel_size is None:
        raise UserError("mesh units 'um' need a voxel size (µm along X, Y, Z)")
    if not np.isfinite(threshold):
        raise UserError(f"threshold must be a finite number, got {threshold!r}")
    if not (tif or png or mesh):
        return []

    stem = sdf_path.stem
    base = out_dir / stem
    written: list[Path] = []
    with SequenceFile(sdf_path) as seq:
        n, shape = seq.n_frames, seq.grid_shape
        bar = tqdm(total=n, desc=f"export {sdf_path.name}", unit="frame", disable=not progress,
                   dynamic_ncols=True)
        images: list[np.ndarray] = []

        def masks() -> Iterator[np.ndarray]:
            for t in range(n):
                frame = seq.frame(t)
                m = masks_from_sdf(frame, threshold)
                if tif:
                    written.append(write_tif_frame(m, base / "tif" / frame_name(stem, t, "tif"), voxel_size))
                if png:
                    img = mip(m)
                    save_image(img, base / "png" / frame_name(stem, t, "png"))
                    written.append(base / "png" / frame_name(stem, t, "png"))
                    images.append(img)
                if mesh:
                    p = write_mesh(frame, base / "mesh" / frame_name(stem, t, mesh), threshold, units, voxel_size)
                    if p is not None:
                        written.append(p)
                bar.update(1)
                yield m

        try:
            if tif:
                written.append(write_hyperstack(masks(), n, shape, base / "tif" / f"{stem}_hyperstack.tif",
                                                voxel_size))
            else:
                for _ in masks():
                    pass
        finally:
            bar.close()
        if png:
            sheet = base / "png" / f"{stem}_sheet.png"
            contact_sheet(images, sheet, columns=min(len(images), 6))
            written.append(sheet)
    return written
