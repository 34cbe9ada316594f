"""Coordinates, time normalisation, rotations and the 70/30 near/far sampling, against hand-worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from autodecoder.training import sampling
from autodecoder.training.data import TrainingSet
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.geometry import frame_times
from autodecoder.model.points import axis_coords, grid_points, index_to_points, rotation_matrices
from conftest import sphere_sdf_sequence, write_h5


def test_axis_coordinates_span_minus_one_to_one():
    assert axis_coords(5).tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert axis_coords(2).tolist() == [-1.0, 1.0]
    assert axis_coords(1).tolist() == [-1.0]  # guarded: no NaN
    assert axis_coords(4).dtype == torch.float32


def test_grid_points_order_and_index_lookup():
    pts = grid_points((3, 2, 5))
    assert pts.shape == (30, 3)
    # voxel (i, j, k) = (2, 1, 3) is flat index 2*10 + 1*5 + 3 = 28
    assert pts[28].tolist() == [1.0, 1.0, 0.5]
    assert pts[0].tolist() == [-1.0, -1.0, -1.0]
    idx = torch.tensor([[28, 0], [7, 29]])
    assert torch.equal(index_to_points(idx, (3, 2, 5)), pts[idx])
    # a length-1 axis gives -1, not NaN
    assert torch.isfinite(grid_points((4, 1, 1))).all()


def test_frame_times():
    assert frame_times(5).tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert frame_times(1).tolist() == [0.0]
    assert frame_times(3).dtype == np.float32


def test_rotation_is_intrinsic_xyz_applied_to_row_vectors():
    a = torch.tensor([0.3, -1.1, 2.0])
    R = rotation_matrices(a)
    assert np.allclose(R.numpy(), Rotation.from_euler("XYZ", a.numpy()).as_matrix(), atol=1e-6)
    # Rz(90°) = [[0,-1,0],[1,0,0],[0,0,1]]; the row vector (1,0,0) @ R is R's first row: (0,-1,0)
    Rz = rotation_matrices(torch.tensor([0.0, 0.0, math.pi / 2]))
    assert np.allclose((torch.tensor([[1.0, 0.0, 0.0]]) @ Rz).numpy(), [[0, -1, 0]], atol=1e-6)
    # composition order: R = Rx(a0) @ Ry(a1) @ Rz(a2)
    Rx = rotation_matrices(torch.tensor([0.3, 0.0, 0.0]))
    Ry = rotation_matrices(torch.tensor([0.0, -1.1, 0.0]))
    Rz = rotation_matrices(torch.tensor([0.0, 0.0, 2.0]))
    assert torch.allclose(R, Rx @ Ry @ Rz, atol=1e-6)


def test_sample_count_is_int_of_product():
    assert sampling.sample_count(16 * 14 * 12, 0.05) == 134  # 134.4
    assert sampling.sample_count(64 ** 3, 0.03) == 7864  # 7864.32


def _frame(n_near: int, n_total: int = 1000) -> np.ndarray:
    sdf = np.full(n_total, 0.8, dtype=np.float32)
    sdf[np.arange(n_near) * (n_total // max(n_near, 1))] = -0.2
    return sdf


def test_near_far_proportions():
    sdf = _frame(200)
    idx = sampling.draw(sdf, 100, sampling.rng_for(1))
    assert idx.shape == (100,)
    assert np.all(sdf[idx[:70]] <= 0.3)  # int(0.7 * 100) near points first
    assert np.all(sdf[idx[70:]] > 0.3)  # then 30 far points


def test_near_threshold_is_inclusive():
    sdf = np.array([0.3] * 10 + [0.3000001] * 10 + [0.9] * 10, dtype=np.float32)
    idx = sampling.draw(sdf, 10, sampling.rng_for(2))  # int(0.7*10) = 7 near, from the ten 0.3 voxels
    assert np.all(idx[:7] < 10)
    assert np.all(idx[7:] >= 10)  # 0.3000001 is far


def test_too_few_near_points_are_all_taken_once():
    sdf = _frame(50)
    idx = sampling.draw(sdf, 100, sampling.rng_for(3))
    near = np.flatnonzero(sdf <= 0.3)
    assert np.array_equal(idx[:50], near)  # each near point exactly once
    assert np.all(sdf[idx[50:]] > 0.3) and len(idx) == 100


def test_no_far_points_is_a_clear_error():
    with pytest.raises(UserError, match="no point with SDF > 0.3"):
        sampling.draw(np.zeros(100, dtype=np.float32), 10, sampling.rng_for(4), where="f.h5: frame 2")


def test_draws_are_keyed_and_reproducible():
    sdf = _frame(300)
    a = sampling.draw(sdf, 100, sampling.rng_for(7, 0, 1, 2))
    b = sampling.draw(sdf, 100, sampling.rng_for(7, 0, 1, 2))
    c = sampling.draw(sdf, 100, sampling.rng_for(7, 0, 1, 3))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_training_set_items_times_and_samples(tiny_data):
    ts = TrainingSet.from_folder(tiny_data, True, 3, 0.05, False, seed=0, progress=False)
    assert len(ts) == 5 + 4 + 3
    assert ts.seq_ids.tolist() == [0] * 5 + [1] * 4 + [2] * 3
    assert ts.frame_ids.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2]
    # time is normalised per file: 5 frames → -1, -0.5, 0, 0.5, 1; 3 frames → -1, 0, 1
    assert ts.times[:5].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert ts.times[9:].tolist() == [-1.0, 0.0, 1.0]
    assert ts.n_points == 134
    b = ts.batch(torch.tensor([6, 0]), epoch=1)
    assert b.points.shape == (2, 134, 3) and b.sdf.shape == (2, 134)
    assert b.seq_ids.tolist() == [1, 0] and b.times.tolist() == [ts.times[6].item(), -1.0]
    # targets are the stored SDF at the sampled voxel: recompute analytically
    ref = sphere_sdf_sequence((16, 14, 12), 4, 0.4, 0.2, (0.1, 0, 0))[1]
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in (16, 14, 12)]
    p = b.points[0].numpy()
    i = np.rint((p[:, 0] + 1) / 2 * 15).astype(int)
    j = np.rint((p[:, 1] + 1) / 2 * 13).astype(int)
    k = np.rint((p[:, 2] + 1) / 2 * 11).astype(int)
    assert np.allclose(axes[0][i], p[:, 0], atol=1e-6)
    assert np.allclose(ref[i, j, k], b.sdf[0].numpy(), atol=1e-6)
    assert int((b.sdf[0] <= 0.3).sum()) >= int(0.7 * 134)
    # fixed sampling: the same points every epoch
    assert torch.equal(ts.batch(torch.tensor([3]), 1).points, ts.batch(torch.tensor([3]), 9).points)


def test_on_the_fly_sampling_draws_fresh_points_each_epoch(tiny_data):
    ts = TrainingSet.from_folder(tiny_data, True, 3, 0.05, True, seed=0, progress=False)
    assert ts.index.shape == (12, 16 * 14 * 12)  # the full-size pool per frame
    e1, e2 = ts.batch(torch.tensor([3]), 1), ts.batch(torch.tensor([3]), 2)
    assert e1.points.shape == (1, 134, 3)
    assert not torch.equal(e1.points, e2.points)
    assert torch.equal(e1.points, ts.batch(torch.tensor([3]), 1).points)  # keyed by epoch
    assert int((e1.sdf <= 0.3).sum()) == int(0.7 * 134)


def test_matlab_layout_fixtures_read_as_t_x_y_z():
    from scipy import ndimage
    from autodecoder.io.sequences import read_sequence
    from conftest import MATLAB_LAYOUT
    div = read_sequence(MATLAB_LAYOUT / "seq_000_divide.h5")
    filo = read_sequence(MATLAB_LAYOUT / "seq_001_filo.h5")
    assert div.shape == filo.shape == (4, 32, 32, 32) and div.dtype == np.float32
    full = np.ones((3, 3, 3))
    # the cell divides: one body, then two daughters (still touching diagonally in the last frame)
    assert [ndimage.label(f <= 0)[1] for f in div] == [1, 1, 1, 2]
    assert ndimage.label(div[0] <= 0, full)[1] == 1
    assert all(ndimage.label(f <= 0, full)[1] == 1 for f in filo)
    # filopodia: thin protrusions that an opening removes, unlike the dividing cell's lobes
    last = filo[-1] <= 0
    opened = ndimage.binary_opening(last, iterations=2)
    assert (last & ~opened).sum() > 0.1 * last.sum()


def test_time_of_a_single_frame_is_zero(tmp_path):
    write_h5(tmp_path / "d" / "a.h5", sphere_sdf_sequence((8, 8, 8), 1, 0.5, 0.0))
    ts = TrainingSet.from_folder(tmp_path / "d", True, 1, 0.5, False, seed=0, progress=False)
    assert ts.times.tolist() == [0.0]
