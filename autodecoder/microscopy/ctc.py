"""Cell Tracking Challenge (CTC) export: the layout that CTC tools and ``py-ctcmetrics`` read.

For sequence ``01`` under ``root``::

    01/t000.tif                  image of frame 0: uint16 (Z, Y, X), one page per z slice
    01_GT/SEG/man_seg000.tif     instance masks: uint16 (Z, Y, X), 0 = background
    01_GT/TRA/man_track000.tif   track labels: uint16 (Z, Y, X), label = track id
    01_GT/TRA/man_track.txt      one line "L B E P" per track (frames zero-based, inclusive)

Frame numbers have 3 digits, or 4 when the sequence has more than 1000 frames (as in CTC).
``write_result_layout`` turns the ground truth into a result (``01_RES/mask000.tif`` +
``res_track.txt``), which evaluating against the ground truth scores SEG = DET = TRA = 1.
Every file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import tifffile
from numpy.typing import NDArray

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import atomic_path, atomic_write_text

TrackTable = Iterable[Sequence[int]]  # rows (L, B, E, P), e.g. lineage.TrackRow


def frame_digits(n_frames: int) -> int:
    """Zero padding of CTC frame numbers: 3 digits up to 1000 frames, 4 beyond."""
    return 3 if n_frames <= 1000 else 4


def as_uint16(array: NDArray, what: str, ndim: int = 3) -> NDArray[np.uint16]:
    """``array`` as uint16 with ``ndim`` axes; refuses non-integers and values outside 0..65535."""
    array = np.asarray(array)
    if array.ndim != ndim:
        raise UserError(f"{what}: expected {ndim} axes, got shape {array.shape}")
    if array.dtype == np.uint16:
        return array
    if array.dtype.kind not in "uib":
        raise UserError(f"{what}: expected integer values 0..65535 (uint16), got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise UserError(f"{what}: values {array.min()}..{array.max()} do not fit uint16 (0..65535)")
    return array.astype(np.uint16)


def write_tiff(path: Path, array: NDArray[np.uint16], voxel_size_zyx: Sequence[float] | None = None) -> None:
    """Write a 16-bit (Z, Y, X) or (Y, X) TIFF atomically, optionally with ImageJ calibration (µm).

    Uncompressed and without a timestamp, so the same array gives the same bytes.
    """
    kwargs: dict = {}
    if voxel_size_zyx is not None:  # ImageJ tags: pixels per µm in x/y, z spacing in µm
        vz, vy, vx = (float(v) for v in voxel_size_zyx)
        kwargs = dict(imagej=True, resolution=(1.0 / vx, 1.0 / vy),
                      metadata={"spacing": vz, "unit": "um", "axes": "ZYX" if array.ndim == 3 else "YX"})
    with atomic_path(Path(path)) as tmp:
        tifffile.imwrite(tmp, array, photometric="minisblack", **kwargs)


def check_track_table(rows: TrackTable) -> list[tuple[int, int, int, int]]:
    """Rows as int 4-tuples; refuses duplicate labels, E < B, unknown parents, parents ending late."""
    table = [tuple(int(v) for v in row) for row in rows]
    by_label = {}
    for row in table:
        if len(row) != 4 or row[0] <= 0 or row[1] < 0 or row[2] < row[1] or row[0] in by_label:
            raise UserError(f"track row {row}: expected a new label L > 0 and 0 <= B <= E (L B E P)")
        by_label[row[0]] = row
    for label, begin, _, parent in table:
        if parent and (parent not in by_label or by_label[parent][2] >= begin):
            raise UserError(f"track {label}: parent {parent} must be a track ending before frame {begin}")
    return table


def format_track_table(rows: TrackTable) -> str:
    """The text of ``man_track.txt``/``res_track.txt``: ``L B E P`` per line, sorted by label."""
    return "".join(f"{l} {b} {e} {p}\n" for l, b, e, p in sorted(check_track_table(rows)))


class CTCWriter:
    """Writes one CTC sequence frame by frame; call ``write_tracks`` once at the end.

    ``root``: the dataset folder; ``sequence_index``: 1 -> ``01``; ``n_frames``: the length of
    the sequence (fixes the file-name padding); ``voxel_size_zyx``: µm, stored as ImageJ
    calibration in the TIFFs (None: none). Frames may come in any order.
    """

    def __init__(self, root: Path | str, sequence_index: int = 1, n_frames: int = 1,
                 voxel_size_zyx: Sequence[float] | None = None) -> None:
        if not 1 <= int(sequence_index) <= 99:
            raise UserError(f"sequence_index={sequence_index!r}: expected 1..99 (1 -> folder '01')")
        if int(n_frames) < 1:
            raise UserError(f"n_frames={n_frames!r}: expected at least 1 frame")
        self.root = Path(root)
        self.sequence = f"{int(sequence_index):02d}"
        self.n_frames = int(n_frames)
        self.digits = frame_digits(self.n_frames)
        self.voxel_size_zyx = voxel_size_zyx
        self.images_dir = self.root / self.sequence
        self.seg_dir = self.root / f"{self.sequence}_GT" / "SEG"
        self.tra_dir = self.root / f"{self.sequence}_GT" / "TRA"
        for folder in (self.images_dir, self.seg_dir, self.tra_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def _number(self, t: int) -> str:
        if not 0 <= t < self.n_frames:
            raise UserError(f"frame {t}: expected 0..{self.n_frames - 1} (n_frames={self.n_frames})")
        return f"{t:0{self.digits}d}"

    def write_frame(self, t: int, image: NDArray, tracks: NDArray, seg: NDArray | None = None,
                    write_seg: bool = True) -> None:
        """Write frame ``t`` (0-based).

        ``image``: (Z, Y, X) integer intensities 0..65535; ``tracks``: (Z, Y, X) track labels;
        ``seg``: (Z, Y, X) instance masks, default the track labels (exact ground truth: every
        cell fully segmented). ``write_seg=False`` leaves the frame out of SEG (CTC annotates
        SEG on a subset of frames).
        """
        number = self._number(t)
        image = as_uint16(image, f"image of frame {t}")
        tracks = as_uint16(tracks, f"track labels of frame {t}")
        seg = tracks if seg is None else as_uint16(seg, f"instance masks of frame {t}")
        if not image.shape == tracks.shape == seg.shape:
            raise UserError(f"frame {t}: image {image.shape}, tracks {tracks.shape} and masks {seg.shape} "
                            "differ; expected one (Z, Y, X) shape")
        write_tiff(self.images_dir / f"t{number}.tif", image, self.voxel_size_zyx)
        if write_seg:
            write_tiff(self.seg_dir / f"man_seg{number}.tif", seg, self.voxel_size_zyx)
        write_tiff(self.tra_dir / f"man_track{number}.tif", tracks, self.voxel_size_zyx)

    def write_tracks(self, rows: TrackTable) -> Path:
        """Write ``man_track.txt`` from rows ``(L, B, E, P)``; returns its path."""
        table = check_track_table(rows)
        if table and max(row[2] for row in table) >= self.n_frames:
            raise UserError(f"track table: a track ends after the last frame {self.n_frames - 1}")
        path = self.tra_dir / "man_track.txt"
        atomic_write_text(path, format_track_table(table))
        return path


def write_result_layout(root: Path | str, sequence_index: int = 1) -> Path:
    """Copy the ground truth of a sequence into its result layout; returns ``<root>/01_RES``.

    ``man_trackNNN.tif`` (full track-labelled masks, consistent with the track table) becomes
    ``maskNNN.tif`` and ``man_track.txt`` becomes ``res_track.txt``: a perfect "result".
    """
    sequence = f"{int(sequence_index):02d}"
    gt = Path(root) / f"{sequence}_GT" / "TRA"
    files = sorted(gt.glob("man_track*.tif"))
    if not files or not (gt / "man_track.txt").is_file():
        raise UserError(f"{gt}: expected a CTC TRA folder with man_trackNNN.tif and man_track.txt")
    res = Path(root) / f"{sequence}_RES"
    res.mkdir(parents=True, exist_ok=True)
    for file in files:
        with atomic_path(res / file.name.replace("man_track", "mask")) as tmp:
            shutil.copyfile(file, tmp)
    with atomic_path(res / "res_track.txt") as tmp:
        shutil.copyfile(gt / "man_track.txt", tmp)
    return res
