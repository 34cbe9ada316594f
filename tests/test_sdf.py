"""Tests of autodecoder.sdf (mask -> signed distance function)."""

import numpy as np
import pytest
from scipy import ndimage

from autodecoder.io.mask_sdf import mask_to_sdf, sdf_sequence


def _ball(n=40, centre=(19.3, 20.1, 18.7), radius=10.0):
    g = np.arange(n, dtype=np.float64)
    d = np.sqrt((g[:, None, None] - centre[0]) ** 2 + (g[None, :, None] - centre[1]) ** 2
                + (g[None, None, :] - centre[2]) ** 2) - radius
    return d <= 0, d


def _brute_force_sdf(mask, clamp):
    """Literal definition: distance to the nearest voxel of the other set."""
    idx = np.argwhere(np.ones(mask.shape, bool)).astype(float)
    inside = idx[mask.ravel()]
    outside = idx[~mask.ravel()]
    out = np.empty(mask.size)
    for k, p in enumerate(idx):
        if mask.ravel()[k]:
            out[k] = -np.sqrt(((outside - p) ** 2).sum(1)).min()
        else:
            out[k] = np.sqrt(((inside - p) ** 2).sum(1)).min()
            if clamp is not None:
                out[k] = min(out[k], clamp)
    return out.reshape(mask.shape)


def test_sphere_matches_analytic_distance_near_surface():
    mask, d = _ball()
    sdf = mask_to_sdf(mask, clamp=None, normalise=False)
    near = np.abs(d) < 4
    assert near.sum() > 1000
    assert np.abs(sdf[near] - d[near]).max() <= 1.0
    # far outside the voxel distance is still close to the analytic one
    far = d > 4
    assert np.abs(sdf[far] - d[far]).max() <= 1.0


def test_sign_and_zero_level_set_equal_the_mask():
    mask, _ = _ball()
    sdf = mask_to_sdf(mask)
    np.testing.assert_array_equal(sdf <= 0, mask)
    np.testing.assert_array_equal(sdf < 0, mask)
    raw = mask_to_sdf(mask, clamp=None, normalise=False)
    # boundary voxels: inside -1 (a face-neighbour outside), outside +1
    assert raw[mask].max() == -1.0
    assert raw[~mask].min() == 1.0
    boundary_in = mask & ~ndimage.binary_erosion(mask)
    assert np.all(raw[boundary_in] == -1.0)


def test_matches_brute_force_definition_on_random_mask():
    rng = np.random.default_rng(3)
    mask = ndimage.binary_opening(rng.random((9, 8, 7)) < 0.55)
    assert mask.any() and not mask.all()
    for clamp in (None, 2.0):
        sdf = mask_to_sdf(mask, clamp=clamp, normalise=False)
        np.testing.assert_allclose(sdf, _brute_force_sdf(mask, clamp), rtol=0, atol=1e-5)


def test_clamp_caps_outside_values_only():
    mask, _ = _ball()
    free = mask_to_sdf(mask, clamp=None, normalise=False)
    capped = mask_to_sdf(mask, clamp=5.0, normalise=False)
    assert free.max() > 5.0
    assert capped.max() == 5.0
    np.testing.assert_array_equal(capped, np.minimum(free, 5.0))
    np.testing.assert_array_equal(capped[mask], free[mask])


def test_normalisation():
    mask, _ = _ball()
    raw = mask_to_sdf(mask, clamp=15.0, normalise=False)
    sdf = mask_to_sdf(mask, clamp=15.0)
    assert sdf.dtype == np.float32 and sdf.shape == mask.shape
    assert np.abs(sdf).max() == 1.0
    assert sdf.max() == 1.0  # the clamp (15 voxels) exceeds the cell's depth (~10)
    assert sdf.min() == pytest.approx(raw.min() / 15.0)
    np.testing.assert_allclose(sdf, raw / np.abs(raw).max(), rtol=1e-6)


def test_normalisation_thick_cell_uses_inside_depth():
    mask, _ = _ball(radius=12.0)
    sdf = mask_to_sdf(mask, clamp=3.0)
    assert sdf.min() == -1.0  # deepest inside point (about 12 voxels) > clamp
    assert sdf.max() == pytest.approx(3.0 / 12.0, abs=0.02)


def test_default_is_clamp_32_and_normalised():
    mask, _ = _ball(n=80, centre=(40, 40, 40), radius=6)
    sdf = mask_to_sdf(mask)
    raw = np.minimum(mask_to_sdf(mask, clamp=None, normalise=False), 32.0)
    assert raw.max() == 32.0
    np.testing.assert_allclose(sdf, raw / 32.0, rtol=1e-6)


def test_accepts_label_images():
    mask, _ = _ball()
    labels = mask.astype(np.uint16) * 7
    np.testing.assert_array_equal(mask_to_sdf(labels), mask_to_sdf(mask))


@pytest.mark.parametrize("shape", [(10, 10), (2, 10, 10, 10), (5,)])
def test_rejects_non_3d(shape):
    with pytest.raises(ValueError, match="3D"):
        mask_to_sdf(np.ones(shape, bool))


def test_rejects_empty_and_full_masks():
    with pytest.raises(ValueError, match="empty"):
        mask_to_sdf(np.zeros((5, 6, 7), bool))
    with pytest.raises(ValueError, match="fills the whole volume"):
        mask_to_sdf(np.ones((5, 6, 7), bool))


@pytest.mark.parametrize("clamp", [0.0, -1.0, float("nan")])
def test_rejects_bad_clamp(clamp):
    mask, _ = _ball()
    with pytest.raises(ValueError, match="clamp"):
        mask_to_sdf(mask, clamp=clamp)


def test_sdf_sequence_per_frame():
    a, _ = _ball(n=24, centre=(10, 12, 11), radius=5)
    b, _ = _ball(n=24, centre=(13, 11, 12), radius=7)
    seq = sdf_sequence(np.stack([a, b]), clamp=6.0)
    assert seq.shape == (2, 24, 24, 24) and seq.dtype == np.float32
    np.testing.assert_array_equal(seq[0], mask_to_sdf(a, clamp=6.0))
    np.testing.assert_array_equal(seq[1], mask_to_sdf(b, clamp=6.0))
    raw = sdf_sequence(np.stack([a, b]), clamp=None, normalise=False)
    np.testing.assert_array_equal(raw[1], mask_to_sdf(b, clamp=None, normalise=False))


def test_sdf_sequence_errors():
    a, _ = _ball(n=16, centre=(8, 8, 8), radius=4)
    with pytest.raises(ValueError, match="4D"):
        sdf_sequence(a)
    with pytest.raises(ValueError, match="frame 1"):
        sdf_sequence(np.stack([a, np.zeros_like(a)]))
