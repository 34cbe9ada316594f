"""Tests of autodecoder.phantoms (synthetic living-cell mask sequences)."""

import time

import numpy as np
import pytest
from scipy import ndimage

from autodecoder.demo import phantoms
from autodecoder.demo.phantoms import KINDS, abscission_frame, demo_sequences, phantom_sequence

GRID, FRAMES = 64, 12
H = 2.0 / (GRID - 1)  # voxel size in world units
S26 = np.ones((3, 3, 3), bool)
_CACHE = {}


def seq(kind, seed, grid=GRID, frames=FRAMES):
    key = (kind, seed, grid, frames)
    if key not in _CACHE:
        _CACHE[key] = phantom_sequence(kind, grid=grid, frames=frames, seed=seed)
    return _CACHE[key]


def n_components(mask):
    return ndimage.label(mask, S26)[1]


def ball(r):
    g = np.arange(-r, r + 1)
    return g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2 <= r * r


def border_is_empty(mask, b=3):
    return not (mask[..., :b, :, :].any() or mask[..., -b:, :, :].any()
                or mask[..., :, :b, :].any() or mask[..., :, -b:, :].any()
                or mask[..., :, :, :b].any() or mask[..., :, :, -b:].any())


# --------------------------------------------------------------------------
# general
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_shape_dtype_and_determinism(kind):
    a = seq(kind, 0)
    assert a.shape == (FRAMES, GRID, GRID, GRID) and a.dtype == np.bool_
    b = phantom_sequence(kind, grid=GRID, frames=FRAMES, seed=0)
    np.testing.assert_array_equal(a, b)
    c = seq(kind, 1)
    assert (a != c).sum() > 1000
    for t in range(FRAMES):
        assert a[t].sum() > 2000  # a cell of sensible size in every frame


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_cells_stay_away_from_border(kind, seed):
    assert border_is_empty(seq(kind, seed))


@pytest.mark.parametrize("kind", KINDS)
def test_border_also_on_small_grids(kind):
    for grid, frames in [(24, 3), (32, 4)]:
        m = phantom_sequence(kind, grid=grid, frames=frames, seed=2)
        assert m.shape == (frames, grid, grid, grid)
        assert border_is_empty(m)
        assert all(m[t].any() for t in range(frames))


@pytest.mark.parametrize("kind", KINDS)
def test_fast_enough(kind):
    t0 = time.perf_counter()
    phantom_sequence(kind, grid=64, frames=12, seed=7)
    assert time.perf_counter() - t0 < 2.0


def test_invalid_arguments():
    with pytest.raises(ValueError, match="kind"):
        phantom_sequence("blob")
    with pytest.raises(ValueError, match="frames"):
        phantom_sequence("deform", frames=0)
    with pytest.raises(ValueError, match="grid"):
        phantom_sequence("deform", grid=8)


def test_single_frame():
    m = phantom_sequence("divide", grid=32, frames=1, seed=0)
    assert m.shape == (1, 32, 32, 32) and n_components(m[0]) == 1
    assert abscission_frame("divide", 32, 1, 0) is None


def test_demo_sequences():
    demo = demo_sequences(grid=32, frames=4)
    names = [n for n, _ in demo]
    assert names == ["seq_000_divide", "seq_001_filo", "seq_002_deform",
                     "seq_003_divide", "seq_004_filo", "seq_005_deform"]
    for i, (name, m) in enumerate(demo):
        kind = name.split("_")[2]
        assert m.shape == (4, 32, 32, 32) and m.dtype == np.bool_
        np.testing.assert_array_equal(m, phantom_sequence(kind, grid=32, frames=4, seed=i))
    # same kind, different seeds -> different cells
    assert (demo[0][1] != demo[3][1]).any()


# --------------------------------------------------------------------------
# divide
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_divide_topology_and_abscission_frame(seed):
    m = seq("divide", seed)
    counts = [n_components(f) for f in m]
    df = abscission_frame("divide", GRID, FRAMES, seed)
    assert df is not None
    assert counts == [1] * df + [2] * (FRAMES - df)
    # splits in the last ~third of the frames
    assert 0.55 * FRAMES <= df <= FRAMES - 2


@pytest.mark.parametrize("frames", [5, 9, 20])
def test_abscission_frame_other_frame_counts(frames):
    m = seq("divide", 4, grid=40, frames=frames)
    counts = [n_components(f) for f in m]
    df = abscission_frame("divide", 40, frames, 4)
    assert counts == [1] * df + [2] * (frames - df)


@pytest.mark.parametrize("seed", [0, 1])
def test_divide_daughters_are_separated(seed):
    m = seq("divide", seed)
    df = abscission_frame("divide", GRID, FRAMES, seed)
    for f in m[df:]:
        lab, n = ndimage.label(f, S26)
        assert n == 2
        dist_to_first = ndimage.distance_transform_edt(lab != 1)
        # at least 2 empty voxels between the daughters
        assert dist_to_first[lab == 2].min() >= 3.0
        sizes = np.bincount(lab.ravel())[1:]
        assert sizes.min() > 0.7 * sizes.max()  # similar daughters


@pytest.mark.parametrize("seed", [0, 1])
def test_divide_cell_size_growth_and_pinch(seed):
    m = seq("divide", seed)
    vols = m.sum(axis=(1, 2, 3))
    r_first = (3 * vols[0] / (4 * np.pi)) ** (1 / 3) * H
    assert 0.33 <= r_first <= 0.47  # radius in units of the half-width
    assert vols[-1] > 1.3 * vols[0]  # the cell grows
    # before abscission the cell elongates: its principal axes become unequal
    df = abscission_frame("divide", GRID, FRAMES, seed)
    pts = np.argwhere(m[df - 1]).astype(float)
    ev = np.linalg.eigvalsh(np.cov(pts.T))
    assert ev[2] > 3 * ev[0]
    pts0 = np.argwhere(m[0]).astype(float)
    ev0 = np.linalg.eigvalsh(np.cov(pts0.T))
    assert ev0[2] < 1.3 * ev0[0]  # but starts roughly spherical


def test_abscission_frame_none_for_other_kinds():
    assert abscission_frame("filo", GRID, FRAMES, 0) is None
    assert abscission_frame("deform", GRID, FRAMES, 0) is None


# --------------------------------------------------------------------------
# filo
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 3])
def test_filo_single_component_every_frame(seed):
    m = seq("filo", seed)
    assert [n_components(f) for f in m] == [1] * FRAMES


@pytest.mark.parametrize("seed", [0, 1])
def test_filo_has_thin_filopodia(seed):
    m = seq("filo", seed)
    last = m[-1]
    # more surface per volume than a ball of the same volume
    vol = last.sum()
    surf = (last & ~ndimage.binary_erosion(last)).sum()
    r = (3 * vol / (4 * np.pi)) ** (1 / 3)
    g = np.arange(GRID) - (GRID - 1) / 2
    sphere = g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2 <= r * r
    sphere_surf = (sphere & ~ndimage.binary_erosion(sphere)).sum() / sphere.sum()
    assert surf / vol > 1.2 * sphere_surf
    # an opening with a radius-3 ball removes the filopodia: 4-7 sizeable pieces
    protrusions = last & ~ndimage.binary_opening(last, ball(3))
    lab, n = ndimage.label(protrusions, S26)
    sizes = np.bincount(lab.ravel())[1:]
    assert 4 <= (sizes >= 15).sum() <= 7
    # they grow out over time from an (almost) bare body
    first = m[0] & ~ndimage.binary_opening(m[0], ball(3))
    assert protrusions.sum() > 5 * first.sum()


@pytest.mark.parametrize("seed", [0, 1])
def test_filo_never_thinner_than_three_voxels(seed):
    # every voxel lies within 2 voxels of the mask eroded by the 6-neighbour
    # cross, so no part is 1-2 voxels thin (such parts vanish on erosion)
    for f in seq("filo", seed)[::3]:
        eroded = ndimage.binary_erosion(f)
        assert ndimage.distance_transform_edt(~eroded)[f].max() <= 2.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_filo_side_branch_appears_late(seed):
    p, sigma = phantoms._params("filo", GRID, seed)
    assert sigma == 1.0
    assert len(p["branches"]) >= 1
    m = seq("filo", seed)
    u = np.arange(FRAMES) / (FRAMES - 1)
    for br in p["branches"]:
        assert 0.45 <= br["onset"] <= 0.75
        # a point near the branch's tip: absent before the onset, present at the end
        tip = br["path"](0.8 * br["length"])[0]
        idx = tuple(np.round((tip + 1) / H).astype(int))
        before = np.flatnonzero(u < br["onset"])[-1]
        assert m[-1][idx]
        assert not m[before][idx]


# --------------------------------------------------------------------------
# deform
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_deform_single_component_smooth_change(seed):
    m = seq("deform", seed)
    assert [n_components(f) for f in m] == [1] * FRAMES
    iou = [(m[t] & m[t + 1]).sum() / (m[t] | m[t + 1]).sum() for t in range(FRAMES - 1)]
    assert min(iou) > 0.75  # smooth in time
    first_last = (m[0] & m[-1]).sum() / (m[0] | m[-1]).sum()
    assert first_last < 0.92  # but the shape really changes
    vols = m.sum(axis=(1, 2, 3))
    assert vols.max() < 1.4 * vols.min()  # no growth, just deformation


@pytest.mark.parametrize("seed", [0, 1])
def test_deform_slow_translation(seed):
    m = seq("deform", seed)
    c = np.array([np.argwhere(f).mean(axis=0) for f in m]) * H
    # at most ~0.1 world units in total (plus the centroid shift from deforming)
    assert np.linalg.norm(c - c[0], axis=1).max() < 0.2
