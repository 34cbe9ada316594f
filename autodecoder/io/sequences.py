"""Reading and writing SDF sequences and code tables in the original's file layouts.

SDF sequences are ``(T, X, Y, Z)`` float32 arrays (docs/method.md §1):

* HDF5 (``.h5``): dataset ``sdf_vid`` written MATLAB-style, i.e. stored as
  ``(Z, Y, X, T)``; reading transposes with ``(3, 2, 1, 0)``.
* MAT (``.mat``): variable ``sdf_vid`` holding ``(T, X, Y, Z)`` directly (MAT v5,
  as ``scipy.io`` writes). MAT v7.3 files written by MATLAB are HDF5 inside and
  store the array transposed; they are read like ``.h5`` files.

:class:`SequenceWriter` stores frames as :class:`Storage` says: ``dense`` (every value, as the
original), ``compact`` (the values inside the cell and in a band of voxels outside it, a constant
farther out: still a valid ``sdf_vid``) or ``mask`` (uint8 ``mask_vid``, which SDF readers refuse).

Every problem with a file raises :class:`UserError` naming the file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np
import scipy.io
from scipy import ndimage

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import atomic_path, fsync_file, temp_name

DATASET = "sdf_vid"
#: The dataset (MAT variable) of ``--store mask`` files: not ``sdf_vid``, so that no SDF reader takes 0/1 for distances.
MASK_DATASET = "mask_vid"
#: How :class:`SequenceWriter` stores frames (``test.py --store``).
STORES = ("dense", "compact", "mask")
#: Compact files: voxels kept beyond ``sdf <= max(0.035, --threshold)``. One SDF unit is 32 voxels at 256³ (§1),
#: so 4 voxels reach sdf ≈ 0.035 + 0.125 there, beyond the fit's clamp 0.1 (``--clamp``); coarser grids reach farther.
COMPACT_BAND = 4
#: Compact files: the value stored beyond the band, the data's outside cap (§1: 1.0 = 32 voxels at 256³).
COMPACT_OUTSIDE = 1.0
#: Above this size a MAT v5 output (held whole in memory) triggers a warning.
MAT_WARN_BYTES = 1 << 30


def sequence_suffix(use_hdf5: bool) -> str:
    """The suffix of training files: ``.h5`` with ``UseHDF5``, else ``.mat``."""
    return ".h5" if use_hdf5 else ".mat"


class SequenceFile:
    """One SDF sequence on disk, read frame by frame without loading the whole array.

    Attributes:
        path: the file.
        n_frames: ``T``.
        grid_shape: ``(X, Y, Z)``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: file not found")
        self._h5: h5py.File | None = None
        self._array: np.ndarray | None = None
        if h5py.is_hdf5(self.path):  # .h5, or a MAT v7.3 file
            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as e:
                raise UserError(f"{self.path}: cannot open as HDF5 ({e})") from None
            if DATASET not in self._h5:
                names = list(self._h5.keys())
                self.close()
                _refuse_masks(self.path, names)
                keys = ", ".join(names) or "nothing"
                raise UserError(f"{self.path}: no dataset \"{DATASET}\" (found: {keys}); not an SDF sequence file")
            ds = self._h5[DATASET]
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 4:
                shape = getattr(ds, "shape", "a group")
                self.close()
                raise UserError(f"{self.path}: \"{DATASET}\" must be 4-D (T, X, Y, Z), got shape {shape}")
            if not np.issubdtype(ds.dtype, np.floating):
                self.close()
                raise UserError(f"{self.path}: \"{DATASET}\" must hold floating-point SDF values, got {ds.dtype}")
            z, y, x, t = ds.shape
            self._shape = (t, x, y, z)
        elif self.path.suffix.lower() == ".mat":
            try:
                mat = scipy.io.loadmat(self.path, variable_names=[DATASET])
            except Exception as e:  # scipy raises several types for broken files
                raise UserError(f"{self.path}: cannot read as a MAT file ({e})") from None
            if DATASET not in mat:
                _refuse_masks(self.path, [w[0] for w in scipy.io.whosmat(self.path)])
                raise UserError(f"{self.path}: no variable \"{DATASET}\"; not an SDF sequence file")
            arr = mat[DATASET]
            if arr.ndim != 4:
                raise UserError(f"{self.path}: \"{DATASET}\" must be 4-D (T, X, Y, Z), got shape {arr.shape}")
            if not np.issubdtype(arr.dtype, np.floating):
                raise UserError(f"{self.path}: \"{DATASET}\" must hold floating-point SDF values, got {arr.dtype}")
            self._array = arr
            self._shape = tuple(arr.shape)
        else:
            raise UserError(f"{self.path}: not an HDF5 or MAT file")
        if min(self._shape) < 1:
            self.close()
            raise UserError(f"{self.path}: \"{DATASET}\" is empty (shape T, X, Y, Z = {self._shape})")

    @property
    def n_frames(self) -> int:
        return self._shape[0]

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return tuple(self._shape[1:])  # type: ignore[return-value]

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as float32 ``(X, Y, Z)``; refuses NaN or infinite values."""
        if self._h5 is not None:
            try:
                arr = np.asarray(self._h5[DATASET][..., t]).transpose(2, 1, 0)
            except (OSError, ValueError, RuntimeError) as e:  # corrupted chunks, truncated files
                raise UserError(f"{self.path}: frame {t}: cannot read ({str(e).splitlines()[0]}); "
                                "the file is damaged: write or copy it again") from None
        else:
            arr = self._array[t]
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise UserError(f"{self.path}: frame {t} holds NaN or infinite values")
        return arr

    def frames(self) -> Iterator[np.ndarray]:
        for t in range(self.n_frames):
            yield self.frame(t)

    def read(self) -> np.ndarray:
        """The whole sequence, float32 ``(T, X, Y, Z)``."""
        return np.stack(list(self.frames()))

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> "SequenceFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _refuse_masks(path: Path, names: Any) -> None:
    """One line for a ``--store mask`` file, which holds no SDF values."""
    if MASK_DATASET in names:
        raise UserError(f"{path}: holds masks (\"{MASK_DATASET}\", uint8, written by test.py --store mask), not "
                        f"SDF values; decode with --store dense or compact to get an SDF sequence")


def read_sequence(path: str | Path) -> np.ndarray:
    """Read an SDF sequence file (``.h5`` or ``.mat``) as float32 ``(T, X, Y, Z)``."""
    with SequenceFile(path) as f:
        return f.read()


@dataclass(frozen=True)
class Storage:
    """How :class:`SequenceWriter` stores each frame (``test.py --store``; docs/method.md §5).

    Attributes:
        mode: ``dense`` (every value, the default), ``compact`` or ``mask`` (see :data:`STORES`).
        levels: the iso-levels whose masks ``sdf <= level`` a ``compact`` file keeps equal to the
            decoding's (0, the filopodial 0.035, ``--threshold``); the band is measured from the highest.
        band: ``compact``: voxels (cube neighbourhood) kept beyond ``sdf <= max(levels)``.
        outside: ``compact``: the value stored farther out; above every level, so masks stay the same.
        threshold: ``mask``: a voxel is 1 where ``sdf <= threshold``.
    """

    mode: str = "dense"
    levels: tuple[float, ...] = (0.0,)
    band: int = COMPACT_BAND
    outside: float = COMPACT_OUTSIDE
    threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in STORES:
            raise ValueError(f"storage mode {self.mode!r}: expected one of {STORES}")
        if self.mode == "compact" and not (self.band >= 1 and self.outside > max(self.levels)):
            raise ValueError(f"compact storage: band {self.band} must be >= 1 and the outside value "
                             f"{self.outside} above every level {self.levels}")

    @property
    def dataset(self) -> str:
        return MASK_DATASET if self.mode == "mask" else DATASET

    @property
    def dtype(self) -> type:
        return np.uint8 if self.mode == "mask" else np.float32

    def attrs(self) -> dict[str, Any]:
        """The file attributes that say how the values were stored (none for ``dense``: as before)."""
        if self.mode == "compact":
            return {"store": "compact", "compact_band_voxels": int(self.band),
                    "compact_outside_value": float(self.outside),
                    "compact_exact_levels": [float(v) for v in sorted(set(self.levels))]}
        if self.mode == "mask":
            return {"store": "mask", "mask_threshold": float(self.threshold),
                    "mask_values": f"1 where sdf <= {self.threshold:g} (inside the cell), 0 elsewhere"}
        return {}

    def encode(self, frame: np.ndarray) -> np.ndarray:
        """A float32 ``(X, Y, Z)`` frame as stored: itself, compacted, or its uint8 mask."""
        if self.mode == "mask":
            return (frame <= self.threshold).astype(np.uint8)
        if self.mode == "compact":
            return compact_frame(frame, max(self.levels), self.band, self.outside)
        return frame


def compact_frame(frame: np.ndarray, top: float, band: int, outside: float) -> np.ndarray:
    """``frame`` where it is ``<= top`` or within ``band`` voxels (cube neighbourhood) of such a voxel, else
    ``outside``: every mask ``frame <= t`` with ``t <= top < outside`` is unchanged."""
    keep = frame <= top
    if keep.any():
        # dilate only the bounding box (plus the band) of the cell: cheap for a small cell in a big grid
        idx = np.nonzero(keep.any(axis=(1, 2)))[0], np.nonzero(keep.any(axis=(0, 2)))[0], \
            np.nonzero(keep.any(axis=(0, 1)))[0]
        box = tuple(slice(max(int(i[0]) - band, 0), int(i[-1]) + band + 1) for i in idx)
        keep[box] = ndimage.maximum_filter(keep[box].view(np.uint8), size=2 * band + 1, mode="constant").view(bool)
    return np.where(keep, frame, np.float32(outside)).astype(np.float32, copy=False)


class SequenceWriter:
    """Write an SDF sequence frame by frame; the file appears under its name only when complete.

    HDF5: the ``(T, X, Y, Z)`` sequence is stored transposed as ``(Z, Y, X, T)``
    (what MATLAB's ``h5read`` returns as ``[T X Y Z]``), float32, one frame per
    chunk, gzip at ``compression``, fill value 0. Frames go to disk as they are
    written, so memory does not grow with the number of frames.
    MAT (v5): the whole array is held until :meth:`close`, as the format needs.

    ``attrs`` are stored as HDF5 file attributes (provenance); MAT files get
    them as a struct variable ``provenance``.

    ``storage`` (default dense, the above): ``compact`` stores :func:`compact_frame` of each frame,
    gzip with the shuffle filter (standard HDF5 filters: h5py and MATLAB's ``h5read`` read it), fill
    value the outside constant; ``mask`` stores uint8 ``mask_vid`` in the same layout. Either adds
    :meth:`Storage.attrs` to the attributes.
    """

    def __init__(self, path: str | Path, n_frames: int, grid_shape: tuple[int, int, int],
                 compression: int = 4, attrs: Mapping[str, Any] | None = None,
                 storage: Storage | None = None) -> None:
        self.path = Path(path)
        self.n_frames = n_frames
        self.grid_shape = tuple(int(n) for n in grid_shape)
        self.storage = storage or Storage()
        self.attrs = {**(attrs or {}), **self.storage.attrs()}
        self.use_hdf5 = self.path.suffix.lower() != ".mat"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_name(self.path)
        self._written = np.zeros(n_frames, dtype=bool)
        x, y, z = self.grid_shape
        if self.use_hdf5:
            self._file = h5py.File(self._tmp, "w")
            self._ds = self._create_dataset((z, y, x, n_frames), int(compression))
            for k, v in self.attrs.items():
                self._file.attrs[k] = _attr_value(v)
        else:
            nbytes = n_frames * x * y * z * 4
            if nbytes > MAT_WARN_BYTES:
                warnings.warn(f"{self.path}: a MAT v5 output is held whole in memory before it is written "
                              f"({nbytes / 2**30:.1f} GiB); use HDF5 (\"UseHDF5\": true) for large outputs",
                              ResourceWarning, stacklevel=2)
            self._array = np.zeros((n_frames, x, y, z), dtype=self.storage.dtype)

    def _create_dataset(self, shape: tuple[int, ...], compression: int) -> h5py.Dataset:
        """The HDF5 dataset, one frame per chunk; dense exactly as before (no shuffle: same bytes)."""
        st, chunks = self.storage, shape[:3] + (1,)
        if st.mode == "dense":
            return self._file.create_dataset(DATASET, shape=shape, dtype="float32", chunks=chunks,
                                             compression="gzip", compression_opts=compression, fillvalue=0.0)
        fill = st.outside if st.mode == "compact" else 0
        # shuffle groups the bytes of the float32 values: the constant far field and the smooth band compress better
        return self._file.create_dataset(st.dataset, shape=shape, dtype=st.dtype, chunks=chunks,
                                         compression="gzip", compression_opts=compression,
                                         shuffle=st.mode == "compact", fillvalue=fill)

    def write_frame(self, t: int, frame: np.ndarray) -> None:
        """Store frame ``t``, float32 ``(X, Y, Z)``."""
        frame = np.asarray(frame, dtype=np.float32)
        if frame.shape != self.grid_shape:
            raise ValueError(f"frame shape {frame.shape} != grid {self.grid_shape}")
        frame = self.storage.encode(frame)
        if self.use_hdf5:
            self._ds[..., t] = frame.transpose(2, 1, 0)
        else:
            self._array[t] = frame
        self._written[t] = True

    def update_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Add or replace provenance attributes before the file is closed (e.g. scores of the frames written)."""
        self.attrs.update(attrs)
        if self.use_hdf5:
            for k, v in attrs.items():
                self._file.attrs[k] = _attr_value(v)

    def close(self) -> None:
        """Finish the file and move it to its final name."""
        if not self._written.all():
            raise RuntimeError(f"{self.path}: frames {np.flatnonzero(~self._written).tolist()} were not written")
        if self.use_hdf5:
            self._file.close()
        else:
            prov = {k: _attr_value(v) for k, v in self.attrs.items()}
            mdict = {self.storage.dataset: self._array}
            if prov:
                mdict["provenance"] = prov
            scipy.io.savemat(self._tmp, mdict, do_compression=True)
            self._array = None
        fsync_file(self._tmp)  # on disk before the rename publishes it
        self._tmp.replace(self.path)

    def abort(self) -> None:
        """Drop the partial file; nothing under the final name changes."""
        if self.use_hdf5:
            try:
                self._file.close()
            except Exception:
                pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "SequenceWriter":
        return self

    def __exit__(self, exc_type, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_sequence(path: str | Path, sdf: np.ndarray, compression: int = 4,
                   attrs: Mapping[str, Any] | None = None) -> None:
    """Write a whole ``(T, X, Y, Z)`` sequence (``.h5`` or ``.mat`` by the suffix of ``path``)."""
    sdf = np.asarray(sdf, dtype=np.float32)
    if sdf.ndim != 4:
        raise ValueError(f"expected a (T, X, Y, Z) array, got shape {sdf.shape}")
    with SequenceWriter(path, sdf.shape[0], sdf.shape[1:], compression, attrs) as w:
        for t, frame in enumerate(sdf):
            w.write_frame(t, frame)


def _attr_value(v: Any) -> Any:
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)):
        return np.asarray(v)
    return v


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance attributes of an output file written by this project."""
    path = Path(path)
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    mat = scipy.io.loadmat(path, variable_names=["provenance"], squeeze_me=True, struct_as_record=False)
    if "provenance" not in mat:
        return {}
    s = mat["provenance"]
    return {k: getattr(s, k) for k in s._fieldnames}


# --------------------------------------------------------------------------
# code and angle tables (MAT v5 variables)

def read_table(path: str | Path, variable: str, n_cols: int | None = None) -> np.ndarray:
    """Read a 2-D float32 table ``variable`` from a MAT file, checking its width."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        mat = scipy.io.loadmat(path, variable_names=[variable])
    except Exception as e:
        raise UserError(f"{path}: cannot read as a MAT file ({e})") from None
    if variable not in mat:
        raise UserError(f"{path}: no variable \"{variable}\"")
    arr = np.asarray(mat[variable], dtype=np.float32)
    if arr.ndim != 2 or (n_cols is not None and arr.shape[1] != n_cols):
        want = f"(rows, {n_cols})" if n_cols is not None else "2-D"
        raise UserError(f"{path}: \"{variable}\" must be {want}, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise UserError(f"{path}: \"{variable}\" holds NaN or infinite values")
    return arr


def write_table(path: str | Path, variable: str, table: np.ndarray) -> None:
    """Write a float32 table as MAT v5 variable ``variable`` (atomically)."""
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as fh:
            scipy.io.savemat(fh, {variable: np.asarray(table, dtype=np.float32)})
