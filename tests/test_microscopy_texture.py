"""Checks of the cell texture (attached to the cell, bounded, band-limited) and compartments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from autodecoder.microscopy import texture


def test_texture_moves_with_the_cell() -> None:
    rng = np.random.default_rng(0)
    local = rng.uniform(-5, 5, (5000, 3))  # points in the cell's own frame (µm)
    rotation = Rotation.from_euler("zyx", [30, -50, 75], degrees=True).as_matrix()
    centre = np.array([12.0, -7.5, 30.0])
    world = local @ rotation.T + centre  # the cell has moved and turned
    before = texture.fbm(local, seed=3, scale_um=2.0)
    after = texture.fbm(texture.cell_coordinates(world, centre, rotation), seed=3, scale_um=2.0)
    np.testing.assert_allclose(after, before, atol=1e-4)
    # Sampling at the world coordinates instead (texture not attached) would differ.
    assert np.abs(texture.fbm(world, seed=3, scale_um=2.0) - before).mean() > 0.05


def test_texture_range_and_seeds() -> None:
    points = np.random.default_rng(1).uniform(-20, 20, (20000, 3))
    a = texture.fbm(points, seed=1)
    b = texture.fbm(points, seed=2)
    assert a.dtype == np.float32 and a.shape == (20000,)
    assert a.min() >= 0.0 and a.max() <= 1.0 and a.std() > 0.05
    assert np.abs(a - b).mean() > 0.05
    np.testing.assert_array_equal(a, texture.fbm(points, seed=1))


def test_texture_is_band_limited() -> None:
    rng = np.random.default_rng(2)
    points = rng.uniform(-50, 50, (20000, 3))
    direction = rng.normal(size=(20000, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    base = texture.fbm(points, seed=5, scale_um=2.0, octaves=3)
    near = texture.fbm(points + 0.05 * direction, seed=5, scale_um=2.0, octaves=3)
    far = texture.fbm(points + 20.0 * direction, seed=5, scale_um=2.0, octaves=3)
    # Neighbours 0.05 µm apart (a tenth of the finest octave, 0.5 µm) differ far less
    # than the texture's own spread ...
    assert np.abs(near - base).mean() < 0.15 * base.std()
    assert np.corrcoef(base, near)[0, 1] > 0.98
    # ... while points 20 µm (10 scales) apart are nearly uncorrelated.
    assert abs(np.corrcoef(base, far)[0, 1]) < 0.05


@pytest.mark.parametrize("voxel_size", [(0.2, 0.2, 0.2), (0.5, 0.2, 0.2)])
def test_compartments_of_a_ball(voxel_size: tuple[float, float, float]) -> None:
    vox = np.asarray(voxel_size)
    half = np.ceil(6.0 / vox).astype(int)
    axes = [(np.arange(2 * k + 1) - k) * v for k, v in zip(half, vox)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    ball = z ** 2 + y ** 2 + x ** 2 <= 25.0  # radius 5 µm
    parts = texture.compartments(ball, voxel_size, membrane_um=0.5, nucleus_depth_um=2.0)
    voxel_volume = float(vox.prod())
    shell = parts["membrane"].sum() * voxel_volume
    assert shell == pytest.approx(4 / 3 * math.pi * (5 ** 3 - 4.5 ** 3), rel=0.10)
    nucleus_radius = (parts["nucleus"].sum() * voxel_volume * 3 / (4 * math.pi)) ** (1 / 3)
    assert nucleus_radius == pytest.approx(3.0, rel=0.05)
    # Disjoint and covering the cell.
    total = parts["membrane"].astype(int) + parts["cytoplasm"] + parts["nucleus"]
    np.testing.assert_array_equal(total, ball.astype(int))
    # The nucleus is a centred ball: its centre of mass is at the origin.
    assert np.allclose([c[parts["nucleus"]].mean() for c in (z, y, x)], 0.0, atol=0.05)
