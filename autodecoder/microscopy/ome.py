"""OME-TIFF and OME-Zarr export of a synthetic 3D+t sequence and its label image.

OME-TIFF (``write_ome_tiff``): one file for the images and one (``<name>_labels.ome.tif``) for
the labels, both uint16 with axes TZYX, ``PhysicalSizeZ/Y/X`` in µm and ``TimeIncrement``;
written frame by frame into the files' memory-mapped pixel data (the process holds one frame),
without timestamps and with UUIDs derived from ``uuid_seed``, so the same input and seed
give byte-identical files.

OME-Zarr (``write_ome_zarr``, optional extra ``pip install '.[zarr]'``): NGFF 0.4 (Zarr v2,
the version most viewers read), one resolution level ``0`` chunked one frame per chunk,
scale ``[dt, vz, vy, vx]`` (s, µm) and a ``labels/cells`` label image with the same scale.
"""

from __future__ import annotations

import shutil
import uuid
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import tifffile
from numpy.typing import NDArray

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import atomic_path
from autodecoder.microscopy.ctc import as_uint16

Frames = NDArray | Iterable[NDArray]  # (T, Z, Y, X) array, or an iterable of (Z, Y, X) frames
_UUID_NAMESPACE = uuid.UUID("6f1c2a52-7d0e-5b8e-9a51-3c2e1f0b9d47")  # fixed: seeds give stable UUIDs


def labels_path(path: Path | str) -> Path:
    """``cells.ome.tif`` -> ``cells_labels.ome.tif`` (also for ``.ome.tiff``)."""
    path = Path(path)
    for suffix in (".ome.tif", ".ome.tiff"):
        if path.name.lower().endswith(suffix):
            return path.with_name(path.name[: -len(suffix)] + "_labels" + suffix)
    raise UserError(f"{path}: expected an OME-TIFF name ending in .ome.tif or .ome.tiff")


def seeded_uuid(seed: int, name: str, role: str) -> str:
    """A URN UUID that depends only on (``seed``, ``name``, ``role``): no clock, no randomness."""
    return f"urn:uuid:{uuid.uuid5(_UUID_NAMESPACE, f'{int(seed)}/{name}/{role}')}"


def _ome_metadata(voxel_size_zyx: Sequence[float], time_increment_s: float, name: str, uid: str) -> dict:
    vz, vy, vx = _check_calibration(voxel_size_zyx, time_increment_s)
    return {"axes": "TZYX", "Name": name, "UUID": uid, "Creator": "autodecoder.microscopy",
            "PhysicalSizeZ": vz, "PhysicalSizeZUnit": "µm", "PhysicalSizeY": vy, "PhysicalSizeYUnit": "µm",
            "PhysicalSizeX": vx, "PhysicalSizeXUnit": "µm",
            "TimeIncrement": float(time_increment_s), "TimeIncrementUnit": "s"}


def _check_calibration(voxel_size_zyx: Sequence[float], time_increment_s: float) -> tuple[float, float, float]:
    sizes = tuple(float(v) for v in voxel_size_zyx)
    if len(sizes) != 3 or min(sizes) <= 0:
        raise UserError(f"voxel_size_zyx={tuple(voxel_size_zyx)!r}: expected three positive sizes in µm (vz, vy, vx)")
    if not float(time_increment_s) > 0:
        raise UserError(f"time_increment_s={time_increment_s!r}: expected a positive frame interval in seconds")
    return sizes  # type: ignore[return-value]


def _frames(frames: Frames, n_frames: int | None, what: str) -> tuple[int, Iterator[NDArray]]:
    """(T, iterator of (Z, Y, X) frames); T from the array/sequence, else ``n_frames``."""
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4:
            raise UserError(f"{what}: expected a (T, Z, Y, X) array, got shape {frames.shape}")
        return len(frames), iter(frames)
    count = len(frames) if hasattr(frames, "__len__") else n_frames  # type: ignore[arg-type]
    if count is None or count < 1:
        raise UserError(f"{what}: an iterator of frames needs n_frames (the number of frames, >= 1)")
    return int(count), iter(frames)


def write_ome_tiff(path: Path | str, images: Frames, voxel_size_zyx: Sequence[float], time_increment_s: float,
                   name: str = "image", uuid_seed: int = 0, labels: Frames | None = None,
                   n_frames: int | None = None) -> list[Path]:
    """Write ``images`` (and ``labels``) as OME-TIFF with axes TZYX; returns the paths written.

    ``images``/``labels``: uint16-compatible integer frames, a (T, Z, Y, X) array or an iterable
    of (Z, Y, X) frames (consumed together, one frame at a time; ``n_frames`` gives T for
    iterators without a length). ``voxel_size_zyx`` in µm, ``time_increment_s`` in s. Labels go
    to ``labels_path(path)``.
    """
    path = Path(path)
    targets = [path] + ([labels_path(path)] if labels is not None else [])
    if not path.name.lower().endswith((".ome.tif", ".ome.tiff")):
        raise UserError(f"{path}: expected an OME-TIFF name ending in .ome.tif or .ome.tiff")
    count, image_iter = _frames(images, n_frames, f"{path} images")
    streams = [image_iter]
    if labels is not None:
        label_count, label_iter = _frames(labels, count, f"{targets[1]} labels")
        if label_count != count:
            raise UserError(f"{targets[1]}: {label_count} label frames for {count} images; expected as many")
        streams.append(label_iter)
    roles = ("images", "labels")
    with ExitStack() as stack:  # every file appears complete, or not at all
        temps = [stack.enter_context(atomic_path(target)) for target in targets]
        for t in range(count):
            frames = [_next_frame(s, target, t) for s, target in zip(streams, targets)]
            if t == 0:  # the shape is known from the first frame: create the files
                maps = [_create(tmp, (count, *frames[0].shape), _ome_metadata(
                    voxel_size_zyx, time_increment_s, name, seeded_uuid(uuid_seed, name, role)))
                    for tmp, role in zip(temps, roles)]
            else:  # mapped again for each frame: written pages leave the process with the mapping
                maps = [tifffile.memmap(tmp, mode="r+") for tmp in temps]
            for mapped, frame, target in zip(maps, frames, targets):
                if frame.shape != mapped.shape[1:]:
                    raise UserError(f"{target} frame {t}: shape {frame.shape}, expected {mapped.shape[1:]}")
                mapped[t] = frame
                mapped.flush()
            del maps  # memory holds one frame, whatever the number of frames
    return targets


def _next_frame(stream: Iterator[NDArray], target: Path, t: int) -> NDArray[np.uint16]:
    frame = next(stream, None)
    if frame is None:
        raise UserError(f"{target}: the frames ended at frame {t}; expected n_frames frames")
    return as_uint16(frame, f"{target} frame {t}")


def _create(tmp: Path, shape: tuple[int, ...], metadata: dict) -> np.memmap:
    """Create an uncompressed OME-TIFF of ``shape`` (T, Z, Y, X) uint16 and map its pixels."""
    return tifffile.memmap(tmp, shape=shape, dtype=np.uint16, ome=True, metadata=metadata,
                           photometric="minisblack")


def write_ome_zarr(path: Path | str, images: Frames, labels: Frames | None, voxel_size_zyx: Sequence[float],
                   time_increment_s: float, name: str = "image", n_frames: int | None = None,
                   overwrite: bool = False) -> Path:
    """Write ``images`` (and ``labels`` as ``labels/cells``) as an OME-Zarr (NGFF 0.4) folder.

    Arrays and iterables of (Z, Y, X) frames as in ``write_ome_tiff``; frames are written one at a
    time. ``overwrite=False`` refuses an existing ``path``. Needs the ``zarr`` extra.
    """
    try:  # optional dependency (extra "zarr"): imported here so the rest works without it
        import zarr
        from ome_zarr.format import FormatV04
        with warnings.catch_warnings():  # ome_zarr.writer's own default argument is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            from ome_zarr.writer import write_label_metadata, write_multiscales_metadata
    except ImportError as exc:
        raise UserError(f"{path}: writing OME-Zarr needs the optional packages ome-zarr and zarr "
                        f"({exc.name} is missing); install them with: pip install '.[zarr]'") from None
    path = Path(path)
    if path.exists() and not overwrite:
        raise UserError(f"{path}: exists; expected a new OME-Zarr folder (or overwrite=True)")
    vz, vy, vx = _check_calibration(voxel_size_zyx, time_increment_s)
    count, image_iter = _frames(images, n_frames, f"{path} images")
    streams = {"images": image_iter}
    if labels is not None:
        streams["labels"] = _frames(labels, count, f"{path} labels")[1]
    fmt = FormatV04()
    axes = [{"name": "t", "type": "time", "unit": "second"}] + [
        {"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    datasets = [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [float(time_increment_s), vz, vy, vx]}]}]
    with atomic_path(path) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=2)
        groups = {"images": root}
        if labels is not None:
            groups["labels"] = root.create_group("labels").create_group("cells")
        _write_zarr_frames(path, groups, streams, count)
        write_multiscales_metadata(root, datasets, fmt=fmt, axes=axes, name=name)
        if labels is not None:
            write_multiscales_metadata(groups["labels"], datasets, fmt=fmt, axes=axes, name="cells")
            write_label_metadata(root["labels"], "cells", fmt=fmt, source={"image": "../../"})
        if overwrite and path.exists():  # the new folder is complete: only now drop the old one
            shutil.rmtree(path)
    return path


def _write_zarr_frames(path: Path, groups: dict, streams: dict[str, Iterator[NDArray]], count: int) -> None:
    """Array ``0`` (T, Z, Y, X) uint16 in each group of ``groups``, filled one frame at a time."""
    arrays: dict = {}
    for t in range(count):
        for role, stream in streams.items():
            frame = _next_frame(stream, path, t)
            if t == 0:  # one chunk per frame: a frame is written (and read) as a unit
                arrays[role] = groups[role].create_array(
                    "0", shape=(count, *frame.shape), chunks=(1, *frame.shape), dtype="uint16",
                    fill_value=0, chunk_key_encoding={"name": "v2", "separator": "/"})  # NGFF 0.4 keys
            if frame.shape != arrays[role].shape[1:]:
                raise UserError(f"{path} {role} frame {t}: shape {frame.shape}, expected {arrays[role].shape[1:]}")
            arrays[role][t] = frame
