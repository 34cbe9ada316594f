"""Shape descriptors against closed forms, division detection, and surface distances."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autodecoder.demo import phantoms
from autodecoder.evaluation import descriptors as d
from autodecoder.evaluation.metrics import surface_distances

OFFSET = np.array([0.3, -0.2, 0.1])  # keep shapes off the grid's symmetry


def coords(n: int):
    """Voxel coordinates (in voxels) relative to a point near the grid centre."""
    c = np.arange(n, dtype=np.float64) - (n - 1) / 2
    x, y, z = np.meshgrid(c - OFFSET[0], c - OFFSET[1], c - OFFSET[2], indexing="ij")
    return x, y, z


def ellipsoid(n: int, a: float, b: float, c: float, rot: np.ndarray | None = None):
    """(mask, sdf-like field) of a solid ellipsoid with semi-axes a, b, c voxels (optionally rotated)."""
    x, y, z = coords(n)
    if rot is not None:
        p = np.stack([x, y, z], -1) @ rot
        x, y, z = p[..., 0], p[..., 1], p[..., 2]
    field = (np.sqrt((x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2) - 1) * min(a, b, c)
    return field <= 0, field.astype(np.float32)


def thomsen_area(a: float, b: float, c: float, p: float = 1.6075) -> float:
    """Knud Thomsen's approximation of an ellipsoid's area (relative error <= 1.061 %)."""
    return 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)


def sphericity(volume: float, area: float) -> float:
    return math.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area


def check_ellipsoid(desc: dict, a: float, b: float, c: float) -> None:
    volume = 4 / 3 * math.pi * a * b * c
    area = thomsen_area(a, b, c)
    axes = sorted([2 * a, 2 * b, 2 * c], reverse=True)
    assert desc["volume"] == pytest.approx(volume, rel=0.01)
    assert desc["surface_area"] == pytest.approx(area, rel=0.03)
    assert desc["sphericity"] == pytest.approx(sphericity(volume, area), abs=0.02)
    assert desc["axis_major"] == pytest.approx(axes[0], rel=0.02)
    assert desc["axis_middle"] == pytest.approx(axes[1], rel=0.02)
    assert desc["axis_minor"] == pytest.approx(axes[2], rel=0.02)
    assert desc["elongation"] == pytest.approx(1 - axes[1] / axes[0], abs=0.02)
    assert desc["flatness"] == pytest.approx(1 - axes[2] / axes[1], abs=0.02)
    assert desc["surface_to_volume"] == pytest.approx(area / volume, rel=0.04)
    assert 0.97 <= desc["solidity"] <= 1.0
    assert desc["components"] == 1
    assert desc["euler_characteristic"] == 1


@pytest.mark.parametrize("surface", ["mask", "sdf"])
def test_sphere_64(surface):
    r = 0.3 * 64
    mask, sdf = ellipsoid(64, r, r, r)
    desc = d.frame_descriptors(mask, sdf, surface=surface)
    check_ellipsoid(desc, r, r, r)
    assert desc["sphericity"] == pytest.approx(1.0, abs=0.02)
    assert desc["elongation"] == pytest.approx(0.0, abs=0.01)


@pytest.mark.parametrize("surface", ["mask", "sdf"])
def test_ellipsoid_64_rotated(surface):
    a, b, c = 0.38 * 64, 0.22 * 64, 0.15 * 64
    rot = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0]  # any orientation
    mask, sdf = ellipsoid(64, a, b, c, rot)
    check_ellipsoid(d.frame_descriptors(mask, sdf, surface=surface), a, b, c)


@pytest.mark.parametrize("surface", ["mask", "sdf"])
def test_sphere_and_ellipsoid_128(surface):
    r = 0.3 * 128
    mask, sdf = ellipsoid(128, r, r, r)
    check_ellipsoid(d.frame_descriptors(mask, sdf, surface=surface), r, r, r)
    a, b, c = 0.38 * 128, 0.22 * 128, 0.15 * 128
    mask, sdf = ellipsoid(128, a, b, c)
    check_ellipsoid(d.frame_descriptors(mask, sdf, surface=surface), a, b, c)


def test_binary_marching_cubes_would_fail_the_area_tolerance():
    """Why the mask is smoothed: marching cubes on the raw mask overestimates a ball's area by ~8 %."""
    r = 0.3 * 64
    mask, _ = ellipsoid(64, r, r, r)
    verts, faces = d.surface_mesh(mask, sigma=0)
    from skimage.measure import mesh_surface_area
    assert mesh_surface_area(verts, faces) / (4 * math.pi * r * r) > 1.05
    verts, faces = d.surface_mesh(mask)
    assert mesh_surface_area(verts, faces) / (4 * math.pi * r * r) == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("surface", ["mask", "sdf"])
def test_torus_64(surface):
    n = 64
    big, small = 0.27 * n, 0.14 * n
    x, y, z = coords(n)
    sdf = (np.sqrt((np.sqrt(x ** 2 + y ** 2) - big) ** 2 + z ** 2) - small).astype(np.float32)
    desc = d.frame_descriptors(sdf <= 0, sdf, surface=surface)
    volume = 2 * math.pi ** 2 * big * small ** 2
    hull = 2 * math.pi * small * big ** 2 + math.pi ** 2 * big * small ** 2 + 4 / 3 * math.pi * small ** 3
    assert desc["volume"] == pytest.approx(volume, rel=0.01)
    assert desc["surface_area"] == pytest.approx(4 * math.pi ** 2 * big * small, rel=0.03)
    assert desc["euler_characteristic"] == 0
    assert desc["components"] == 1
    assert desc["solidity"] == pytest.approx(volume / hull, abs=0.03)
    assert desc["flatness"] > 0.3  # a ring is flat


def test_two_spheres_64():
    n, r = 64, 0.15 * 64
    x, y, z = coords(n)
    sdf = (np.minimum(np.sqrt((x - 0.22 * n) ** 2 + y ** 2 + z ** 2),
                      np.sqrt((x + 0.22 * n) ** 2 + y ** 2 + z ** 2)) - r).astype(np.float32)
    desc = d.frame_descriptors(sdf <= 0)
    assert desc["components"] == 2
    assert desc["euler_characteristic"] == 2
    assert desc["volume"] == pytest.approx(2 * 4 / 3 * math.pi * r ** 3, rel=0.01)
    assert desc["surface_area"] == pytest.approx(2 * 4 * math.pi * r ** 2, rel=0.03)
    assert desc["elongation"] > 0.5  # the pair is long


def test_small_components_can_be_ignored():
    r = 10
    mask, _ = ellipsoid(48, r, r, r)
    mask[2, 2, 2] = True  # a one-voxel speck
    assert d.frame_descriptors(mask)["components"] == 2
    assert d.frame_descriptors(mask, min_component_voxels=2)["components"] == 1


def test_mesh_is_closed_at_the_grid_edge():
    mask = np.zeros((32, 32, 32), dtype=bool)
    mask[:12, :12, :12] = True  # a cube in the corner, touching three faces of the grid
    verts, faces = d.surface_mesh(mask)
    assert d.mesh_volume(verts, faces) == pytest.approx(12 ** 3, rel=0.05)
    desc = d.frame_descriptors(mask)
    assert 0.85 * 6 * 12 ** 2 < desc["surface_area"] <= 6 * 12 ** 2  # smoothing rounds the edges a little
    assert desc["solidity"] > 0.97


def test_empty_mask():
    desc = d.frame_descriptors(np.zeros((16, 16, 16), dtype=bool))
    assert desc["volume"] == 0 and desc["components"] == 0 and desc["euler_characteristic"] == 0
    assert math.isnan(desc["surface_area"]) and math.isnan(desc["sphericity"])


def test_sequence_descriptors_growth_and_division():
    frames = [{"volume": 100 + 10 * t, "components": 1 if t < 3 else 2} for t in range(6)]
    s = d.sequence_descriptors(frames)
    assert s["frames"] == 6
    assert s["growth_rate"] == pytest.approx(10.0)
    assert s["relative_growth_rate"] == pytest.approx(0.1)
    assert s["division_frame"] == 3
    assert d.division_frame([1, 1, 1]) is None
    assert d.division_frame([2, 1, 2, 3]) == 3  # more than frame 0, not merely a change
    one = d.sequence_descriptors([{"volume": 5, "components": 1}])
    assert math.isnan(one["growth_rate"]) and one["division_frame"] is None


@pytest.mark.parametrize("seed", [0, 1])
def test_division_frame_of_dividing_phantom(seed):
    masks = phantoms.phantom_sequence("divide", 64, 12, seed)
    rows = d.sequence_frame_descriptors(masks)
    found = d.sequence_descriptors(rows)["division_frame"]
    expected = phantoms.abscission_frame("divide", 64, 12, seed)
    assert found is not None and abs(found - expected) <= 1
    assert rows[0]["components"] == 1 and rows[-1]["components"] == 2
    assert d.sequence_descriptors(rows)["growth_rate"] > 0  # the mother grows before dividing


# --------------------------------------------------------------------------
# surface distances (autodecoder.metrics)

def test_surface_distances():
    a, _ = ellipsoid(48, 10, 10, 10)
    assert surface_distances(a, a) == (0.0, 0.0, 0.0)
    b, _ = ellipsoid(48, 13, 13, 13)
    sd = surface_distances(a, b)  # concentric: every boundary voxel is ~3 voxels from the other surface
    assert sd.mean == pytest.approx(3.0, abs=0.5)
    assert 2.5 <= sd.p95 <= sd.max <= 4.0
    shifted = np.roll(a, 2, axis=0)
    sd = surface_distances(a, shifted)
    assert 0.3 < sd.mean < 2.0 and sd.max == pytest.approx(2.0)
    empty = np.zeros_like(a)
    assert surface_distances(empty, empty).mean == 0.0
    assert math.isinf(surface_distances(a, empty).p95)
    with pytest.raises(ValueError):
        surface_distances(a, a[:-1])
