"""Deterministic synthetic living-cell mask sequences (the project's demo data).

Every sequence is a boolean array of shape ``(T, X, Y, Z)`` (frames first) on a
cubic grid of ``grid`` voxels per axis whose voxel centres span [-1, 1]:
voxel ``i`` sits at ``x = (i/(N-1) - 0.5)*2`` (docs/method.md §1), so one voxel is
``h = 2/(N-1)`` world units (0.0317 at N = 64). Frame ``t`` of ``T`` is at the
normalised time ``u = t/(T-1)`` in [0, 1] (``u = 0`` for a single frame).

Shapes are analytic implicit functions (signed-distance-like fields, negative
inside) evaluated on the voxel centres and thresholded at ``<= 0``; blends use
the polynomial smooth minimum ``smin(a, b, k) = min(a, b) - k/4 * w**2``,
``w = max(k - |a - b|, 0)/k``. The only randomness is ``numpy.random.
default_rng(seed)``: the same ``(kind, grid, frames, seed)`` always gives the
same array, and the geometry is defined in world units, so another ``grid``
samples the same shapes (except that tubes are never thinner than 1.5 voxels
in radius). Every cell stays at least 3 voxels (plus a one-voxel margin) away
from the volume border; on grids too coarse for that (some seeds below 64 voxels)
the whole cell is shrunk about the origin by the needed factor (never at
64^3).

Kinds
-----
``"divide"`` -- a dividing cell (cytokinesis)
    A slightly ellipsoidal mother cell of radius ``r0`` in [0.35, 0.38] that
    grows by 16 % (radius) until abscission. From ``u = 0.22`` it elongates
    along a seed-chosen division axis and pinches: it is the smooth union
    (``k = 0.10``) of two spherical lobes whose centres move apart while the
    lobes shrink to the daughters' radius ``R * 2**(-1/3)`` (half the volume
    each); the lobe separation is chosen so that the neck radius falls
    linearly to 1.5 voxels (``>= 0.045``) at ``u = 0.64``. At ``u >= 0.64``
    (abscission, the last ~third of the frames) the bridge is gone: two
    separate daughters (gap >= 3 voxels) that move apart by 0.03 and
    grow by 4 %. The whole cell is scaled transversally by factors in
    [0.93, 1.03] (ellipsoidal look). :func:`abscission_frame` gives the first
    two-cell frame.

``"filo"`` -- a cell with filopodia
    An ellipsoidal body (radius 0.35, axis factors in [0.92, 1.08], slowly
    breathing by 3 %) with 4-7 filopodia: thin tubes (radius 1.9 voxels at
    the base tapering to 1.6 voxels at the tip at 64^3, i.e. 0.060 -> 0.051
    world units, never less than 1.5 voxels) that start inside the body and
    grow out along seed-chosen directions at least 40 deg apart, gently bent
    (quadratic path, curvature up to 0.35), to 0.28-0.55 beyond the body
    surface, each with its own onset and growth time. The longest filopodium
    (and each other one with probability 0.3) grows a straight side branch
    from 35-60 % of its length, at 35-60 deg, that appears at ``u`` in
    [0.5, 0.6] and grows to 0.14-0.26 by ``u = 0.85``. Tubes join the body
    through a smooth union (``k = 0.05``), giving a small flare at the base.
    The mask is one 26-connected component in every frame.

``"deform"`` -- a deforming, migrating blob
    A star-shaped cell ``|p - c(u)| <= r0 * (1 + b(u) + delta(n, u))`` with
    ``r0`` in [0.36, 0.42], a 3 % "breathing" term ``b`` and a radial
    perturbation ``delta`` of the direction ``n``: a sum of the 5 real
    spherical harmonics of degree 2 and the 7 of degree 3 (each scaled to a
    maximum of 1 on the sphere), with coefficients ``A sin(2 pi f u + phi)``
    (std of ``A`` 0.16 for degree 2 and 0.08 for degree 3, ``f`` in
    [0.25, 0.75] cycles per sequence), scaled down where needed so that
    ``|delta| <= 0.35``. The centre ``c`` moves along a gently curved path by
    0.05-0.10 in total. One connected component.

Overrides
---------
``phantom_sequence(..., overrides={...})`` replaces some of the seed-drawn parameters (and the
fixed timeline constants) by given values, so that populations with a wider, chosen variation
can be drawn (:mod:`autodecoder.demo.populations`). Without ``overrides`` (or with an empty one)
every sequence is exactly what it always was. The keys (:data:`OVERRIDES`), world units and
normalised time ``u``:

* every kind: ``radius`` (``r0`` of divide and deform; the body radius of filo before its
  per-axis factors), ``growth`` (relative radius growth over the sequence: the mother's growth
  before abscission for divide, default 0.16; ``radius·(1 + growth·u)`` for filo and deform,
  default 0);
* ``divide``: ``elongate_start`` (default 0.22) and ``abscission`` (default 0.64; above 1 the
  cell pinches but does not divide within the sequence);
* ``filo``: ``count`` (number of filopodia, default 4–7) and ``length`` (factor on each
  filopodium's drawn extension beyond the body, default 1);
* ``deform``: ``amplitude`` (factor on the spherical-harmonic amplitudes, default 1; ``|delta|``
  stays capped at 0.35) and ``travel`` (distance the centre moves, default 0.05–0.10).

Public API: :data:`KINDS`, :data:`OVERRIDES`, :func:`phantom_sequence`, :func:`demo_sequences`,
:func:`abscission_frame`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from autodecoder.demo.filopodia import filo_frame_mask, filo_params
from autodecoder.demo.shapes import local, random_direction, random_rotation, smin, smoothstep, unit
from autodecoder.experiment.geometry import axis_coords, voxel_size

__all__ = ["KINDS", "OVERRIDES", "phantom_sequence", "demo_sequences", "abscission_frame"]

KINDS = ("divide", "filo", "deform")
#: The parameters :func:`phantom_sequence` accepts as ``overrides``, per kind (module docstring).
OVERRIDES = {"divide": ("radius", "growth", "elongate_start", "abscission"),
             "filo": ("radius", "growth", "count", "length"),
             "deform": ("radius", "growth", "amplitude", "travel")}

#: Number of voxels next to each face of the volume that every cell leaves empty.
BORDER_VOXELS = 3
#: Smallest supported grid (voxels per axis).
MIN_GRID = 24

# --- "divide" timeline (normalised time u in [0, 1]) -----------------------
_DIV_ELONGATE_START = 0.22  # the mother starts to elongate / pinch
_DIV_ABSCISSION = 0.64  # first time with two separate daughters
_DIV_SMOOTH_K = 0.10  # smooth-union width of the two lobes (world units)
_DIV_GROWTH = 0.16  # relative radius growth of the mother before abscission


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
def _times(frames: int) -> np.ndarray:
    """Normalised times ``u = t/(T-1)`` in [0, 1] of ``frames`` frames (float64; 0 for one frame)."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if frames == 1:
        return np.zeros(1)
    return np.arange(frames) / (frames - 1)


def _border_limit(grid: int, extra: float = 0.0) -> float:
    """Largest |coordinate| a cell point may reach (3 voxels + margin from the border)."""
    return 1.0 - (BORDER_VOXELS + 1.0) * voxel_size(grid) - extra


# ---------------------------------------------------------------------------
# "divide"
# ---------------------------------------------------------------------------
def _divide_params(seed: int, h: float, overrides: dict | None = None) -> dict:
    rng = np.random.default_rng(seed)
    rot = random_rotation(rng)  # column 0: division axis
    r0 = rng.uniform(0.35, 0.38)
    scale = np.array([1.0, rng.uniform(0.93, 1.03), rng.uniform(0.93, 1.03)])
    centre = rng.uniform(-0.025, 0.025, size=3)
    neck_min = max(1.5 * h, 0.045) / min(scale[1:].min(), 1.0)
    o = overrides or {}
    p = dict(rot=rot, r0=float(o.get("radius", r0)), scale=scale, centre=centre, neck_min=neck_min, h=h,
             growth=float(o.get("growth", _DIV_GROWTH)),
             elongate_start=float(o.get("elongate_start", _DIV_ELONGATE_START)),
             abscission=float(o.get("abscission", _DIV_ABSCISSION)))
    if not 0.0 <= p["elongate_start"] < p["abscission"]:
        raise ValueError(f"divide: expected 0 <= elongate_start < abscission, got {p['elongate_start']} "
                         f"and {p['abscission']}")
    # farthest any cell point gets from the origin (lobe centres lie on the
    # unscaled division axis; the smooth union adds at most k/4)
    reach = max(s + (r_l + k / 4) * scale.max() for r_l, s, k in
                (_divide_state(p, u) for u in np.linspace(0, 1, 101)))
    p["bound"] = float(np.linalg.norm(centre) + reach)
    return p


def _divide_state(p: dict, u: float):
    """Lobe radius, half-separation and smoothing width at time u."""
    k = _DIV_SMOOTH_K
    start, abscission = p["elongate_start"], p["abscission"]
    grow = 1.0 + p["growth"] * smoothstep(u / abscission)
    big_r = p["r0"] * grow
    r_d = big_r * 2.0 ** (-1.0 / 3.0)  # daughter radius: half the volume
    if u < abscission:
        x = np.clip((u - start) / (abscission - start), 0.0, 1.0)
        r_l = (1 - x) * (big_r - k / 4) + x * r_d
        neck = (1 - x) * (r_l + k / 4) + x * p["neck_min"]
        s = np.sqrt(max((r_l + k / 4) ** 2 - neck**2, 0.0))
        return r_l, s, k
    x = (u - abscission) / (1.0 - abscission)
    r_end = p["r0"] * (1.0 + p["growth"]) * 2.0 ** (-1.0 / 3.0)
    r_l = r_end * (1.0 + 0.04 * x)
    s_abs = np.sqrt((r_end + k / 4) ** 2 - p["neck_min"] ** 2)
    s = max(s_abs, r_l + 1.5 * p["h"]) + 0.03 * x
    return r_l, s, 0.0


def _divide_frame_mask(coords, p: dict, u: float) -> np.ndarray:
    r_l, s, k = _divide_state(p, u)
    a, b, c = local(*coords, p["centre"], p["rot"])
    b = b / np.float32(p["scale"][1])
    c = c / np.float32(p["scale"][2])
    bc2 = b * b + c * c
    f1 = np.sqrt((a - np.float32(s)) ** 2 + bc2) - np.float32(r_l)
    f2 = np.sqrt((a + np.float32(s)) ** 2 + bc2) - np.float32(r_l)
    return smin(f1, f2, k) <= 0


# ---------------------------------------------------------------------------
# "deform"
# ---------------------------------------------------------------------------
def _real_harmonics(x, y, z):
    """Unnormalised real spherical harmonics of degree 2 (5) and 3 (7) of a unit vector."""
    x2, y2, z2 = x * x, y * y, z * z
    deg2 = [x * y, y * z, x * z, x2 - y2, 3 * z2 - 1]
    deg3 = [
        x * (x2 - 3 * y2), y * (3 * x2 - y2), z * (x2 - y2), x * y * z,
        x * (5 * z2 - 1), y * (5 * z2 - 1), z * (5 * z2 - 3),
    ]
    return deg2, deg3


def _sphere_samples(count: int = 2000) -> np.ndarray:
    """Fibonacci-sphere unit vectors (deterministic)."""
    i = np.arange(count) + 0.5
    phi = np.arccos(1 - 2 * i / count)
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


_SPHERE = _sphere_samples()
_d2, _d3 = _real_harmonics(*_SPHERE.T)
_HARMONIC_MAX = np.array([np.abs(f).max() for f in _d2 + _d3])
_MAX_DELTA = 0.35


def _deform_params(seed: int, overrides: dict | None = None) -> dict:
    rng = np.random.default_rng(seed)
    r0 = rng.uniform(0.36, 0.42)
    amps = np.concatenate([rng.normal(0, 0.16, 5), rng.normal(0, 0.08, 7)])
    freqs = rng.uniform(0.25, 0.75, size=12)
    phases = rng.uniform(0, 2 * np.pi, size=12)
    breathe_phase = rng.uniform(0, 2 * np.pi)
    start = rng.uniform(-0.05, 0.05, size=3)
    move = random_direction(rng) * rng.uniform(0.05, 0.10)
    sway = unit(np.cross(move, random_direction(rng))) * rng.uniform(0.0, 0.02)
    o = overrides or {}
    if "radius" in o:
        r0 = float(o["radius"])
    if "amplitude" in o:
        amps = amps * float(o["amplitude"])
    if "travel" in o:
        move = unit(move) * float(o["travel"])
    growth = float(o.get("growth", 0.0))
    bound = (np.linalg.norm(start) + 0.5 * np.linalg.norm(move) + np.linalg.norm(sway)
             + r0 * (1.03 + _MAX_DELTA) * (1.0 + max(growth, 0.0)))
    return dict(r0=r0, amps=amps, freqs=freqs, phases=phases, breathe_phase=breathe_phase,
                start=start, move=move, sway=sway, growth=growth, bound=float(bound))


def _deform_coeffs(p: dict, u: float) -> np.ndarray:
    coef = p["amps"] * np.sin(2 * np.pi * p["freqs"] * u + p["phases"]) / _HARMONIC_MAX
    delta = np.stack(_d2 + _d3, axis=1) @ coef  # perturbation on the sample sphere
    worst = np.abs(delta).max()
    if worst > _MAX_DELTA:
        coef = coef * (_MAX_DELTA / worst)
    return coef


def _deform_frame_mask(coords, p: dict, u: float) -> np.ndarray:
    centre = p["start"] + p["move"] * (u - 0.5) + p["sway"] * np.sin(np.pi * u)
    x, y, z = (c - np.float32(o) for c, o in zip(coords, centre))
    r = np.sqrt(x * x + y * y + z * z)
    inv = np.float32(1.0) / np.maximum(r, np.float32(1e-6))
    d2, d3 = _real_harmonics(x * inv, y * inv, z * inv)
    coef = _deform_coeffs(p, u).astype(np.float32)
    delta = np.zeros_like(r)
    for cf, f in zip(coef, d2 + d3):
        delta += cf * f
    breathe = 0.03 * np.sin(2 * np.pi * u + p["breathe_phase"])
    r0 = p["r0"] * (1.0 + p["growth"] * u) if p["growth"] else p["r0"]
    radius = np.float32(r0) * (np.float32(1.0 + breathe) + delta)
    return r <= radius


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------
def _check(kind: str, grid: int, frames: int) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown phantom kind {kind!r}; expected one of {KINDS}")
    if grid < MIN_GRID:
        raise ValueError(f"grid must be >= {MIN_GRID} voxels per axis, got {grid}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")


def _params(kind: str, grid: int, seed: int, overrides: dict | None = None):
    """Shape parameters and the shrink factor ``sigma`` (<= 1) for this grid.

    Geometry is in world units. If the grid is too coarse for a cell to keep
    ``BORDER_VOXELS`` (+1 margin) empty voxels at every face, the cell is
    shrunk about the origin by ``sigma`` (the cell is evaluated at ``p /
    sigma``); in its own coordinates the voxel size is then ``h / sigma``. At
    64^3 and finer ``sigma == 1`` for every seed.
    """
    h, limit = voxel_size(grid), _border_limit(grid)
    sigma = 1.0
    for _ in range(20):
        if kind == "divide":
            p = _divide_params(seed, h / sigma, overrides)
        elif kind == "filo":
            p = filo_params(seed, h / sigma, limit / sigma, overrides)
        else:
            p = _deform_params(seed, overrides)
        if p["bound"] <= limit / sigma:
            return p, sigma
        sigma = limit / p["bound"] * 0.999
    raise RuntimeError("could not fit the phantom into the grid")  # pragma: no cover


def phantom_sequence(kind: str, grid: int = 64, frames: int = 12, seed: int = 0,
                     overrides: Mapping[str, float] | None = None) -> np.ndarray:
    """Boolean mask sequence of one synthetic cell.

    Parameters
    ----------
    kind:
        One of :data:`KINDS` (``"divide"``, ``"filo"``, ``"deform"``; see the
        module docstring).
    grid:
        Voxels per axis (cubic grid, voxel centres spanning [-1, 1]); >= 24.
        Below 64 voxels the cell may be shrunk a little to keep the
        3-voxel empty border.
    frames:
        Number of frames ``T`` (>= 1), evenly spread over the cell's life.
    seed:
        Seed of ``numpy.random.default_rng``; the only source of randomness.
    overrides:
        Parameters to set instead of drawing them (keys of :data:`OVERRIDES` for ``kind``;
        see the module docstring). ``None`` (the default) gives the sequence of ``seed`` exactly
        as it always was.

    Returns
    -------
    numpy.ndarray
        bool array of shape ``(T, grid, grid, grid)``, axes ``(T, X, Y, Z)``,
        True inside the cell.
    """
    _check(kind, grid, frames)
    unknown = sorted(set(overrides or {}) - set(OVERRIDES[kind]))
    if unknown:
        raise ValueError(f"overrides {unknown} unknown for kind {kind!r}; expected some of {OVERRIDES[kind]}")
    p, sigma = _params(kind, grid, seed, dict(overrides) if overrides else None)
    inv = np.float32(1.0 / sigma)
    axis = axis_coords(grid) * inv
    coords = (axis[:, None, None], axis[None, :, None], axis[None, None, :])
    out = np.empty((frames, grid, grid, grid), dtype=bool)
    for t, u in enumerate(_times(frames)):
        u = float(u)
        if kind == "divide":
            out[t] = _divide_frame_mask(coords, p, u)
        elif kind == "filo":
            out[t] = filo_frame_mask(coords, axis, p, u)
        else:
            out[t] = _deform_frame_mask(coords, p, u)
    return out


def abscission_frame(kind: str, grid: int = 64, frames: int = 12, seed: int = 0) -> int | None:
    """Index of the first frame in which a ``"divide"`` cell is two cells.

    Before it the cell is one 26-connected component, from it on two
    components at least 2 voxels apart (abscission at normalised time
    0.64). ``None`` for the other kinds and for a single-frame sequence.
    The arguments are those of :func:`phantom_sequence`; the answer does not
    depend on ``grid`` or ``seed``.
    """
    _check(kind, grid, frames)
    if kind != "divide" or frames < 2:
        return None
    u = _times(frames)
    return int(np.argmax(u >= _DIV_ABSCISSION - 1e-12))


def demo_sequences(grid: int = 64, frames: int = 12) -> list[tuple[str, np.ndarray]]:
    """The project's demo training set: six sequences, two of each kind.

    Returns ``[(name, masks), ...]`` in the order ``seq_000_divide``,
    ``seq_001_filo``, ``seq_002_deform``, ``seq_003_divide``,
    ``seq_004_filo``, ``seq_005_deform``; sequence ``i`` uses seed ``i``.
    Each ``masks`` is a bool ``(T, X, Y, Z)`` array as returned by
    :func:`phantom_sequence`.
    """
    out = []
    for i in range(6):
        kind = KINDS[i % 3]
        out.append((f"seq_{i:03d}_{kind}", phantom_sequence(kind, grid=grid, frames=frames, seed=i)))
    return out
