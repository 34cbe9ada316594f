"""Ground-truth lineage from scene cells: divisions, fragments, re-merges, exits, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from autodecoder.experiment.errors import UserError
from autodecoder.microscopy.lineage import LineageTracker, TrackRow, cells_to_label_image, track_sequence

SHAPE = (20, 32, 48)  # (Z, Y, X) voxels of 1 µm
VOXEL = (1.0, 1.0, 1.0)
GRID = np.indices(SHAPE).astype(np.float32)


def ball(centre: tuple[float, float, float], radius: float) -> np.ndarray:
    """Bool (Z, Y, X) mask of a ball; ``centre`` (z, y, x) in voxels."""
    d2 = sum((g - c) ** 2 for g, c in zip(GRID, centre))
    return d2 <= radius ** 2


def neck(x0: float, x1: float, radius: float = 2.0) -> np.ndarray:
    """Bool mask of a cylinder along x from x0 to x1 through (z, y) = (10, 16)."""
    z, y, x = GRID
    return ((z - 10) ** 2 + (y - 16) ** 2 <= radius ** 2) & (x >= x0) & (x <= x1)


def dividing(t: int, k: int) -> np.ndarray:
    """Two balls moving apart along x, joined by a neck before frame ``k``."""
    d = 3 + 2 * t
    mask = ball((10, 16, 24 - d), 5) | ball((10, 16, 24 + d), 5)
    if t < k:
        mask |= neck(24 - d, 24 + d)
    return mask


def run(frames: list[np.ndarray], **kw) -> tuple[np.ndarray, list[TrackRow]]:
    return track_sequence(frames, VOXEL, **kw)


def test_division_ends_mother_and_starts_two_daughters():
    k, T = 3, 6
    frames = [cells_to_label_image({1: dividing(t, k), 2: ball((10, 5, 5), 3)}, SHAPE) for t in range(T)]
    labels, rows = run(frames)
    assert labels.dtype == np.uint16 and labels.shape == (T, *SHAPE)
    mother = int(labels[0][10, 16, 24])
    other = int(labels[0][10, 5, 5])
    daughters = sorted({int(labels[k][10, 16, 24 - 3 - 2 * k]), int(labels[k][10, 16, 24 + 3 + 2 * k])})
    assert len(set([mother, other, *daughters])) == 4
    assert set(rows) == {TrackRow(mother, 0, k - 1, 0), TrackRow(other, 0, T - 1, 0),
                         TrackRow(daughters[0], k, T - 1, mother), TrackRow(daughters[1], k, T - 1, mother)}
    assert sorted(r.label for r in rows) == [1, 2, 3, 4]  # 1..N, each used once
    for t in range(T):  # every voxel of a cell is labelled, the background is not
        assert np.array_equal(labels[t] > 0, frames[t] > 0)
        assert np.all(labels[t][frames[t] == 2] == other)  # the same label in every frame


def test_small_fragment_keeps_the_mother_label():
    T = 6
    frames = [cells_to_label_image({3: ball((10, 16, 20), 6) | (ball((10, 16, 40), 1.0) if t >= 2 else False)}, SHAPE)
              for t in range(T)]
    assert (frames[2] == 3).sum() > ball((10, 16, 20), 6).sum()  # the 7-voxel fragment is there
    labels, rows = run(frames, min_volume_um3=10.0)
    assert rows == [TrackRow(1, 0, T - 1, 0)]
    assert all(labels[t][10, 16, 40] == 1 for t in range(2, T))


def test_split_that_remerges_after_one_frame_is_no_division():
    T, split = 6, 3
    frames = [cells_to_label_image({1: dividing(2, 99) if t != split else dividing(2, 0)}, SHAPE)
              for t in range(T)]
    labels, rows = run(frames, min_frames=2)
    assert rows == [TrackRow(1, 0, T - 1, 0)]
    assert np.all(labels[split][frames[split] > 0] == 1)
    # with min_frames=1 the same one-frame split is a division, and the re-merge ends a daughter
    _, rows1 = run(frames, min_frames=1)
    assert TrackRow(1, 0, split - 1, 0) in rows1
    daughters = [r for r in rows1 if r.parent == 1]
    assert len(daughters) == 2 and all(r.begin == split for r in daughters)
    assert sorted(r.end for r in daughters) == [split, T - 1]  # merged: one continues, one ends


def test_cell_leaving_the_field_ends_its_track():
    T = 8
    frames = [cells_to_label_image({5: ball((10, 16, 38 + 4 * t), 5)}, SHAPE) for t in range(T)]
    seen = [t for t in range(T) if frames[t].any()]
    assert seen[-1] < T - 1  # it does leave the field
    labels, rows = run(frames)
    assert rows == [TrackRow(1, 0, seen[-1], 0)]
    assert all(set(np.unique(labels[t])) == {0, 1} for t in seen)


def test_split_into_three_gives_three_daughters():
    T = 5
    def cell(t):
        if t < 2:
            return ball((10, 16, 24), 8)
        return ball((10, 16, 10), 4) | ball((10, 16, 24), 4) | ball((10, 16, 38), 4)
    _, rows = run([cell(t).astype(np.uint8) for t in range(T)])
    assert rows[0] == TrackRow(1, 0, 1, 0)
    assert rows[1:] == [TrackRow(label, 2, T - 1, 1) for label in (2, 3, 4)]


@pytest.mark.parametrize("min_frames", [1, 2, 3])
def test_memory_is_bounded_and_output_delayed(min_frames):
    tracker = LineageTracker(VOXEL, min_frames=min_frames)
    emitted = []
    for t in range(9):
        out = tracker.push(cells_to_label_image({1: dividing(t % 5, 3)}, SHAPE), payload=t)
        assert len(tracker._buffer) <= min_frames + 1
        emitted += [f.index for f in out]
        assert emitted == list(range(max(0, t - min_frames + 2)))  # delay min_frames - 1
        assert all(f.payload == f.index for f in out)
    emitted += [f.index for f in tracker.finish()]
    assert emitted == list(range(9))


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(UserError, match="min_frames"):
        LineageTracker(VOXEL, min_frames=0)
    tracker = LineageTracker(VOXEL)
    with pytest.raises(UserError, match="cell-label image"):
        tracker.push(np.zeros((4, 4), dtype=np.uint16))
    with pytest.raises(UserError, match="overlaps"):
        cells_to_label_image({1: ball((10, 16, 24), 3), 2: ball((10, 16, 25), 3)}, SHAPE)
