"""Small pieces of smooth implicit shapes shared by the demo's phantoms (:mod:`autodecoder.demo.phantoms`,
:mod:`autodecoder.demo.filopodia`): smooth steps and minima, random directions and rotations.

Coordinates are world units on the grid's [-1, 1] cube (docs/method.md §1); fields are float32 so
that the phantoms are bit-identical on every machine.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BIG", "smoothstep", "smin", "unit", "random_direction", "frame_from", "random_rotation", "local"]

#: A distance far outside every shape (float32).
BIG = np.float32(1e3)


def smoothstep(x):
    """0 below 0, 1 above 1, ``3x² − 2x³`` between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum; equals min(a, b) where |a - b| >= k."""
    if k <= 0:
        return np.minimum(a, b)
    k = np.float32(k)
    w = np.maximum(k - np.abs(a - b), 0) / k
    return np.minimum(a, b) - w * w * (k * np.float32(0.25))


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to length 1."""
    return v / np.linalg.norm(v)


def random_direction(rng: np.random.Generator) -> np.ndarray:
    """A random unit vector (one draw of 3 normals from ``rng``)."""
    return unit(rng.normal(size=3))


def frame_from(axis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Orthonormal 3x3 matrix whose first column is ``axis``; the other two
    columns are rotated about it by a seed-chosen angle."""
    a = unit(axis)
    helper = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    b = unit(np.cross(a, helper))
    c = np.cross(a, b)
    ang = rng.uniform(0, 2 * np.pi)
    b, c = np.cos(ang) * b + np.sin(ang) * c, -np.sin(ang) * b + np.cos(ang) * c
    return np.stack([a, b, c], axis=1)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A random rotation matrix (columns: a random axis and two rotated about it)."""
    return frame_from(random_direction(rng), rng)


def local(x, y, z, centre, rot):
    """Coordinates of the grid points in the frame (centre, columns of rot)."""
    dx, dy, dz = x - np.float32(centre[0]), y - np.float32(centre[1]), z - np.float32(centre[2])
    r = rot.astype(np.float32)
    return [dx * r[0, j] + dy * r[1, j] + dz * r[2, j] for j in range(3)]
