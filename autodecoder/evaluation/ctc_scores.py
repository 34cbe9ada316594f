"""Segmentation results as Cell Tracking Challenge results, validated and scored with ``py-ctcmetrics``.

A result of sequence ``NN`` is a folder ``NN_RES`` (anywhere: it need not sit beside the ground
truth) holding ``maskTTT.tif`` — uint16 ``(Z, Y, X)`` instance labels, one file per frame of the
sequence — and ``res_track.txt`` (``L B E P`` per track; :mod:`autodecoder.microscopy.ctc`).
:func:`write_result` makes every instance of every frame its own one-frame track: SEG and DET do
not look at links between frames, and the result stays valid whatever the segmentation.

Scores (``ctc_metrics``, the CTC definitions):

* DET = 1 − min(AOGM-D, AOGM-D₀) / AOGM-D₀, with AOGM-D = 5·splits + 10·missed + 1·spurious
  detections over the reference markers of every frame (``NN_GT/TRA``) and AOGM-D₀ = 10 × their
  number; a reference cell is detected by a result instance covering more than half of it.
* SEG = the sum over the reference cells of the annotated frames (``NN_GT/SEG``) of the Jaccard
  index (IoU) with their matching instance (0 for a cell without one), divided by their number.

A ground truth with only ``SEG`` gets SEG (no DET); one with only ``TRA`` gets DET (no SEG).
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np
from numpy.typing import NDArray

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import atomic_write_text, temp_name
from autodecoder.microscopy.ctc import as_uint16, format_track_table, frame_digits, write_tiff

__all__ = ["write_result", "validate_result", "score_result", "annotated_sequences", "METRICS"]

#: The scores this module reports.
METRICS = ("SEG", "DET")

_SEQUENCE = re.compile(r"^\d{2,}$")


@contextlib.contextmanager
def _quiet():
    """``ctc_metrics`` prints progress lines on stdout; keep the benchmark's output readable."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def write_result(res_dir: str | Path, frames: Iterable[NDArray], n_frames: int,
                 voxel_size_zyx: tuple[float, float, float] | None = None) -> Path:
    """Write instance labels as a CTC result folder; returns it.

    ``frames``: ``n_frames`` label images ``(Z, Y, X)`` in frame order (0 = background; any
    positive numbering per frame). Each instance becomes the track ``L t t 0`` with a label unique
    over the sequence. The folder is built under a temporary name and replaces ``res_dir`` when
    complete. Raises :class:`UserError` beyond 65535 instances (uint16) or for a wrong frame count.
    """
    res_dir = Path(res_dir)
    staging = temp_name(res_dir)
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed run of this process id
    staging.mkdir(parents=True)
    digits, rows, next_label, t = frame_digits(n_frames), [], 1, -1
    try:
        for t, labels in enumerate(frames):
            if t >= n_frames:
                raise UserError(f"{res_dir}: more than the {n_frames} frames announced")
            ids = np.unique(labels[labels > 0])
            if next_label + len(ids) - 1 > 65535:
                raise UserError(f"{res_dir}: more than 65535 instances in the sequence (uint16 labels)")
            lut = np.zeros(int(ids.max()) + 1 if len(ids) else 1, dtype=np.int64)
            lut[ids] = np.arange(next_label, next_label + len(ids))
            rows += [(int(label), t, t, 0) for label in lut[ids]]
            next_label += len(ids)
            write_tiff(staging / f"mask{t:0{digits}d}.tif", as_uint16(lut[labels], f"result frame {t}"),
                       voxel_size_zyx)
        if t + 1 != n_frames:
            raise UserError(f"{res_dir}: {t + 1} result frames for a sequence of {n_frames}")
        atomic_write_text(staging / "res_track.txt", format_track_table(rows))
        if res_dir.exists():
            shutil.rmtree(res_dir)
        staging.rename(res_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return res_dir


def validate_result(res_dir: str | Path) -> bool:
    """The ``ctc_metrics`` validator: True when masks and track table form a valid CTC result."""
    from ctc_metrics import validate_sequence
    with _quiet():
        return validate_sequence(str(res_dir), threads=1)["Valid"] == 1


def _has(folder: Path, pattern: str) -> bool:
    return folder.is_dir() and any(folder.glob(pattern))


def score_result(res_dir: str | Path, gt_dir: str | Path) -> dict[str, float | None]:
    """SEG and DET of a result folder against a ground-truth folder ``NN_GT`` (None where the ground
    truth lacks what a score needs, or when the validator rejects the result)."""
    from ctc_metrics import evaluate_sequence
    res, gt = Path(res_dir), Path(gt_dir)
    has_tra = _has(gt / "TRA", "man_track*.tif") and (gt / "TRA" / "man_track.txt").is_file()
    has_seg = _has(gt / "SEG", "man_seg*.tif")
    if not (has_tra or has_seg):
        raise UserError(f"{gt}: no ground truth to score against (expected SEG/man_segTTT.tif and/or "
                        "TRA/man_trackTTT.tif with TRA/man_track.txt)")
    scores: dict[str, float | None] = {m: None for m in METRICS}
    with _quiet():
        if has_tra:
            found = evaluate_sequence(str(res), str(gt), metrics=["SEG", "DET"] if has_seg else ["DET"], threads=1)
            scores.update({m: found.get(m) for m in METRICS if found.get(m) is not None})
        else:
            scores["SEG"] = _seg_only(res, gt)
    return scores


def _seg_only(res: Path, gt: Path) -> float:
    """SEG without TRA (``evaluate_sequence`` needs TRA): ``ctc_metrics``' own matching and SEG."""
    from ctc_metrics.metrics import seg
    from ctc_metrics.scripts.evaluate import match_computed_to_reference_masks
    from ctc_metrics.utils.filesystem import parse_masks
    masks = parse_masks(str(res))
    refs = parse_masks(str(gt / "SEG"))
    number = [int(Path(r).stem.replace("man_seg", "").replace("_", "")) for r in refs]
    if max(number) >= len(masks):
        raise UserError(f"{gt / 'SEG'}: annotates frame {max(number)} but {res} holds {len(masks)} frames")
    matched = match_computed_to_reference_masks(refs, [masks[n] for n in number], threads=1)
    return seg(matched["labels_ref"], matched["ious"])


def annotated_sequences(root: str | Path) -> list[tuple[Path, Path]]:
    """``(images NN, ground truth NN_GT)`` of every sequence of a CTC dataset whose ``NN_GT`` holds
    SEG or TRA masks, in order; :class:`UserError` if there is none."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: test data not found (expected a CTC dataset folder with 01/ and 01_GT/)")
    found = [(d, d.with_name(d.name + "_GT")) for d in sorted(root.iterdir())
             if d.is_dir() and _SEQUENCE.match(d.name)]
    found = [(d, g) for d, g in found if _has(g / "SEG", "man_seg*.tif") or _has(g / "TRA", "man_track*.tif")]
    if not found:
        raise UserError(f"{root}: no annotated sequence (expected NN/ with tNNN.tif and NN_GT/SEG or NN_GT/TRA)")
    return found
