"""Ground-truth tracks and lineage from the cells of a scene, frame by frame.

Input, one frame at a time: a cell-label image ``(Z, Y, X)`` of unsigned integers in field
coordinates, 0 = background and ``k > 0`` = the voxels of the scene's cell ``k`` (a label image
rather than one mask per cell: one array per frame, and two cells can never claim the same
voxel; ``cells_to_label_image`` builds it from ``{cell_id: bool mask}``). Output, per frame:
a uint16 TRACK label image ``(Z, Y, X)``, and at the end the Cell Tracking Challenge track
table, one ``TrackRow(L, B, E, P)`` per track (frames zero-based and inclusive).

Rules:
  * Components are 26-connected pieces of one cell's mask; pieces of different scene cells
    are never joined, linked or merged, even where they touch.
  * Linking, frame t-1 -> t: each component of t takes as predecessor the component of t-1 of
    the same cell that it overlaps most (voxels in common, field coordinates; ties -> the
    lower component index). A component that overlaps none but whose cell has components in
    t-1 (a fast-moving cell) takes the one with the nearest centroid. Without any, it is new.
  * A track's successors at t are the components whose predecessor carries its label at t-1.
    None: the track ends at t-1 (the cell left the field: its mask became empty; or it merged).
  * A successor is *significant* if it and a chain of its successors (one per frame) exist in
    each of the ``min_frames`` frames t .. t+min_frames-1, each with a volume above
    ``min_volume_um3`` (voxel count x vz*vy*vx). Two or more significant successors make a
    division: the mother ends at t-1 and each significant successor starts a new track with
    P = mother (a split into three gives three daughters; CTC's table allows that). Smaller or
    short-lived pieces take the label of the nearest (centroid) daughter; without a division
    every successor keeps the mother's label, so a fragment stays with the track it came
    from. A fragment that later grows and persists causes the division at that later frame.
  * Re-merge (CTC allows no merges): a merged component continues the track of the
    predecessor it overlaps most (normally the larger daughter); the other track ends at t-1.
  * Components without a predecessor (a cell entering the field) start tracks with P = 0,
    grouped per cell by the same significance rule (one track unless >= 2 are significant).
    A cell that leaves and comes back gets a new track (no gap closing).
  * Near the end of the sequence the look-ahead is cut short: a piece that cannot be seen for
    ``min_frames`` frames is not significant, so no division is declared in the last
    ``min_frames - 1`` frames.
Labels are 1..N in order of creation, unique over the sequence, never reused; more than 65535
tracks is an error (uint16). Output is delayed by ``min_frames - 1`` frames; the tracker keeps
at most ``min_frames + 1`` frames (the last decided one and the look-ahead), so its memory does
not depend on the number of frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from autodecoder.experiment.errors import UserError

MAX_LABEL = np.iinfo(np.uint16).max
_STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)  # full 3x3x3 neighbourhood = 26-connectivity


class TrackRow(NamedTuple):
    """One line ``L B E P`` of a CTC track table (frames zero-based, inclusive)."""

    label: int
    begin: int
    end: int
    parent: int


@dataclass
class TrackedFrame:
    """A decided frame: ``labels`` uint16 ``(Z, Y, X)`` track labels; ``payload`` as pushed."""

    index: int
    labels: NDArray[np.uint16]
    payload: Any = None


@dataclass(eq=False)  # identity, not array comparison
class _Frame:
    """Components of one frame; index 0 of the per-component arrays is the background."""

    index: int
    components: NDArray[np.int32]  # (Z, Y, X) component index per voxel, 0 = background
    cell: NDArray[np.int64]  # (n + 1,) scene cell id of each component
    volume: NDArray[np.int64]  # (n + 1,) voxels
    centroid: NDArray[np.float64]  # (n + 1, 3) voxel coordinates (z, y, x)
    pred: NDArray[np.int64]  # (n + 1,) predecessor component in the previous frame, 0 = none
    payload: Any
    label: NDArray[np.int64] | None = None  # (n + 1,) track label, once decided

    @property
    def n(self) -> int:
        return len(self.cell) - 1


def cells_to_label_image(masks: Mapping[int, NDArray[np.bool_]], shape: tuple[int, int, int]) -> NDArray[np.uint32]:
    """``{cell_id: bool mask (Z, Y, X)}`` -> uint32 cell-label image ``(Z, Y, X)``; overlaps are refused."""
    out = np.zeros(shape, dtype=np.uint32)
    for cell_id, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        if cell_id <= 0 or mask.shape != tuple(shape):
            raise UserError(f"cell {cell_id}: expected a positive id and a mask of shape {tuple(shape)}, "
                            f"got shape {mask.shape}")
        if np.any(out[mask]):
            raise UserError(f"cell {cell_id}: its mask overlaps another cell's; expected disjoint masks")
        out[mask] = cell_id
    return out


def _components(cells: NDArray[np.integer]) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
    """26-connected components of each cell separately -> (component image, cell id per component)."""
    comp = np.zeros(cells.shape, dtype=np.int32)
    owner = [0]
    for cell_id, box in enumerate(ndimage.find_objects(cells), start=1):
        if box is None:
            continue
        pieces, n = ndimage.label(cells[box] == cell_id, structure=_STRUCTURE_26)
        inside = pieces > 0
        comp[box][inside] = pieces[inside] + (len(owner) - 1)  # boxes of cells may overlap
        owner.extend([cell_id] * n)
    return comp, np.asarray(owner, dtype=np.int64)


def _link(prev: _Frame, comp: NDArray[np.int32], cell: NDArray[np.int64],
          centroid: NDArray[np.float64]) -> NDArray[np.int64]:
    """Predecessor in ``prev`` of each component of ``comp`` (most overlap, same cell; 0 = none)."""
    both = (prev.components > 0) & (comp > 0)
    a, b = prev.components[both].astype(np.int64), comp[both].astype(np.int64)
    same = prev.cell[a] == cell[b]  # a component only inherits from its own cell
    flat = np.bincount(a[same] * len(cell) + b[same], minlength=(prev.n + 1) * len(cell))
    overlap = flat.reshape(prev.n + 1, len(cell))  # (previous component, new component) voxels
    pred = overlap.argmax(axis=0)  # argmax picks the lowest index among ties
    pred[overlap.max(axis=0) == 0] = 0
    for c in range(1, len(cell)):
        candidates = np.flatnonzero(prev.cell[1:] == cell[c]) + 1
        if pred[c] == 0 and len(candidates):  # the cell moved by more than its size: nearest centroid
            dist = np.linalg.norm(prev.centroid[candidates] - centroid[c], axis=1)
            pred[c] = candidates[int(dist.argmin())]
    return pred


class LineageTracker:
    """Streaming ground-truth tracker; see the module docstring for the rules.

    ``push(cells)`` takes the next frame's cell-label image ``(Z, Y, X)`` and returns the frames
    that became decided (in order, each once); ``finish()`` returns the rest, after which
    ``rows()`` gives the track table.
    """

    def __init__(self, voxel_size_zyx: tuple[float, float, float], min_frames: int = 2,
                 min_volume_um3: float = 10.0) -> None:
        """``voxel_size_zyx`` in µm; ``min_frames`` >= 1; ``min_volume_um3`` >= 0 in µm³."""
        if len(voxel_size_zyx) != 3 or min(voxel_size_zyx) <= 0:
            raise UserError(f"voxel_size_zyx={voxel_size_zyx!r}: expected three positive sizes in µm (vz, vy, vx)")
        if int(min_frames) != min_frames or min_frames < 1:
            raise UserError(f"min_frames={min_frames!r}: expected an integer >= 1")
        if min_volume_um3 < 0:
            raise UserError(f"min_volume_um3={min_volume_um3!r}: expected a volume >= 0 in µm³")
        self.min_frames = int(min_frames)
        self.min_voxels = float(min_volume_um3) / float(np.prod(voxel_size_zyx))
        self._buffer: deque[_Frame] = deque()  # [last decided frame?, undecided frames...]
        self._pushed = 0
        self._finished = False
        self._next_label = 1
        self._begin: dict[int, int] = {}
        self._parent: dict[int, int] = {}
        self._end: dict[int, int] = {}

    def push(self, cells: NDArray[np.integer], payload: Any = None) -> list[TrackedFrame]:
        """Add frame ``cells`` (uint cell labels ``(Z, Y, X)``); return the frames now decided.

        ``payload`` (e.g. the frame's image) is handed back with the frame's track labels.
        """
        if self._finished:
            raise UserError("LineageTracker.push: the tracker was finished; expected a new tracker")
        cells = np.asarray(cells)
        if cells.dtype == bool:  # a single cell given as a mask
            cells = cells.astype(np.uint8)
        if cells.ndim != 3 or cells.dtype.kind != "u":
            raise UserError(f"frame {self._pushed}: expected an unsigned integer cell-label image (Z, Y, X), "
                            f"got {cells.dtype} with shape {cells.shape}")
        last = self._buffer[-1] if self._buffer else None
        if last is not None and last.components.shape != cells.shape:
            raise UserError(f"frame {self._pushed}: shape {cells.shape} differs from the previous "
                            f"{last.components.shape}; expected one field of view")
        comp, cell = _components(cells)
        n = len(cell) - 1
        volume = np.bincount(comp.ravel(), minlength=n + 1).astype(np.int64)
        centroid = np.zeros((n + 1, 3))
        if n:
            centroid[1:] = ndimage.center_of_mass(comp > 0, comp, np.arange(1, n + 1))
        pred = _link(last, comp, cell, centroid) if last is not None else np.zeros(n + 1, dtype=np.int64)
        self._buffer.append(_Frame(self._pushed, comp, cell, volume, centroid, pred, payload))
        self._pushed += 1
        return self._drain(final=False)

    def finish(self) -> list[TrackedFrame]:
        """Decide and return the remaining frames; afterwards ``rows()`` is complete."""
        if self._finished:
            return []
        out = self._drain(final=True)
        self._finished = True
        if self._buffer:
            last = self._buffer[-1]
            for label in set(last.label[1:].tolist()):
                self._end[label] = last.index
        self._buffer.clear()
        return out

    def rows(self) -> list[TrackRow]:
        """The CTC track table, sorted by label; only complete after ``finish()``."""
        if not self._finished:
            raise RuntimeError("LineageTracker.rows() before finish(): track ends are not known yet")
        return [TrackRow(label, self._begin[label], self._end[label], self._parent[label])
                for label in sorted(self._begin)]

    # ------------------------------------------------------------------ decisions

    def _drain(self, final: bool) -> list[TrackedFrame]:
        """Decide every undecided frame whose look-ahead window is complete (or all, if ``final``)."""
        out = []
        while True:
            undecided = [f for f in self._buffer if f.label is None]
            if not undecided or (not final and len(undecided) < self.min_frames):
                return out
            frame = undecided[0]
            prev = self._buffer[0] if self._buffer[0] is not frame else None
            self._decide(prev, frame)
            out.append(TrackedFrame(frame.index, frame.label.astype(np.uint16)[frame.components], frame.payload))
            if prev is not None:
                self._buffer.popleft()  # only the newest decided frame is needed for linking

    def _persists(self, pos: int, c: int, depth: int) -> bool:
        """Whether component ``c`` of buffered frame ``pos`` starts a chain of ``depth`` large components."""
        frame = self._buffer[pos]
        if frame.volume[c] <= self.min_voxels:
            return False
        if depth == 1:
            return True
        if pos + 1 >= len(self._buffer):
            return False  # past the last frame: cannot be confirmed
        following = self._buffer[pos + 1]
        return any(self._persists(pos + 1, int(s), depth - 1) for s in np.flatnonzero(following.pred == c) if s)

    def _decide(self, prev: _Frame | None, frame: _Frame) -> None:
        """Give every component of ``frame`` a track label (rules in the module docstring)."""
        pos = 0 if prev is None else 1  # the buffer is [prev?, frame, look-ahead...]
        frame.label = np.zeros(frame.n + 1, dtype=np.int64)
        groups: dict[tuple[str, int], list[int]] = {}
        for c in range(1, frame.n + 1):
            p = int(frame.pred[c])
            key = ("track", int(prev.label[p])) if p else ("new", int(frame.cell[c]))
            groups.setdefault(key, []).append(c)
        if prev is not None:
            for label in set(prev.label[1:].tolist()) - {k[1] for k in groups if k[0] == "track"}:
                self._end[label] = prev.index  # no successor: left the field or merged
        for (kind, key), members in groups.items():
            big = [c for c in members if self._persists(pos, c, self.min_frames)]
            mother = key if kind == "track" else 0
            if len(big) < 2:
                label = mother if kind == "track" else self._new_label(frame.index, 0)
                frame.label[members] = label
                continue
            if kind == "track":
                self._end[mother] = frame.index - 1  # division: the mother ends before the daughters
            for c in big:
                frame.label[c] = self._new_label(frame.index, mother)
            for c in set(members) - set(big):  # fragments join the nearest daughter
                dist = np.linalg.norm(frame.centroid[big] - frame.centroid[c], axis=1)
                frame.label[c] = frame.label[big[int(dist.argmin())]]

    def _new_label(self, begin: int, parent: int) -> int:
        """Next unused track label, starting at ``begin`` with parent ``parent`` (0 = none)."""
        label = self._next_label
        if label > MAX_LABEL:
            raise UserError(f"track {label}: more than {MAX_LABEL} tracks; expected at most that many (uint16 labels)")
        self._next_label += 1
        self._begin[label], self._parent[label] = begin, parent
        return label


def track_sequence(frames: Any, voxel_size_zyx: tuple[float, float, float], min_frames: int = 2,
                   min_volume_um3: float = 10.0) -> tuple[NDArray[np.uint16], list[TrackRow]]:
    """Whole-sequence convenience: cell labels ``(T, Z, Y, X)`` -> track labels ``(T, Z, Y, X)`` and rows."""
    tracker = LineageTracker(voxel_size_zyx, min_frames, min_volume_um3)
    out = [f.labels for cells in frames for f in tracker.push(cells)]
    out += [f.labels for f in tracker.finish()]
    return np.stack(out), tracker.rows()
