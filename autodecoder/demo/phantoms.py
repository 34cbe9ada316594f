"""Deterministic synthetic living-cell mask sequences (the project's demo data).

Every sequence is a boolean array of shape ``(T, X, Y, Z)`` (frames first) on a
cubic grid of ``grid`` voxels per axis whose voxel centres span [-1, 1]:
voxel ``i`` sits at ``x = (i/(N-1) - 0.5)*2`` (SPEC section 1), so one voxel is
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
    [0.93, 1.03] (ellipsoidal look). :func:`division_frame` gives the first
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

Public API: :data:`KINDS`, :func:`phantom_sequence`, :func:`demo_sequences`,
:func:`division_frame`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KINDS", "phantom_sequence", "demo_sequences", "division_frame"]

KINDS = ("divide", "filo", "deform")

#: Number of voxels next to each face of the volume that every cell leaves empty.
BORDER_VOXELS = 3
#: Smallest supported grid (voxels per axis).
MIN_GRID = 24

# --- "divide" timeline (normalised time u in [0, 1]) -----------------------
_DIV_ELONGATE_START = 0.22  # the mother starts to elongate / pinch
_DIV_ABSCISSION = 0.64  # first time with two separate daughters
_DIV_SMOOTH_K = 0.10  # smooth-union width of the two lobes (world units)
_DIV_GROWTH = 0.16  # relative radius growth of the mother before abscission

# --- "filo" parameters ------------------------------------------------------
_FILO_BODY_RADIUS = 0.35
_FILO_RADIUS_BASE = 0.060  # 1.9 voxels at 64^3
_FILO_RADIUS_TIP = 0.051  # 1.6 voxels at 64^3
_FILO_MIN_RADIUS_VOX = 1.5  # never thinner than 3 voxels across
_FILO_SMOOTH_K = 0.05
_FILO_SEGMENT = 0.05  # polyline segment length used to draw bent tubes

_BIG = np.float32(1e3)


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
def _axis_coords(n: int) -> np.ndarray:
    """Voxel-centre coordinates of one axis (float32), ``(i/(n-1) - 0.5)*2``."""
    i = np.arange(n, dtype=np.float32)
    return (i / np.float32(max(n - 1, 1)) - np.float32(0.5)) * np.float32(2.0)


def _voxel(n: int) -> float:
    return 2.0 / max(n - 1, 1)


def _times(frames: int) -> np.ndarray:
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if frames == 1:
        return np.zeros(1)
    return np.arange(frames) / (frames - 1)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum; equals min(a, b) where |a - b| >= k."""
    if k <= 0:
        return np.minimum(a, b)
    k = np.float32(k)
    w = np.maximum(k - np.abs(a - b), 0) / k
    return np.minimum(a, b) - w * w * (k * np.float32(0.25))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _random_direction(rng: np.random.Generator) -> np.ndarray:
    return _unit(rng.normal(size=3))


def _frame_from(axis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Orthonormal 3x3 matrix whose first column is ``axis``; the other two
    columns are rotated about it by a seed-chosen angle."""
    a = _unit(axis)
    helper = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    b = _unit(np.cross(a, helper))
    c = np.cross(a, b)
    ang = rng.uniform(0, 2 * np.pi)
    b, c = np.cos(ang) * b + np.sin(ang) * c, -np.sin(ang) * b + np.cos(ang) * c
    return np.stack([a, b, c], axis=1)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    return _frame_from(_random_direction(rng), rng)


def _local(x, y, z, centre, rot):
    """Coordinates of the grid points in the frame (centre, columns of rot)."""
    dx, dy, dz = x - np.float32(centre[0]), y - np.float32(centre[1]), z - np.float32(centre[2])
    r = rot.astype(np.float32)
    return [dx * r[0, j] + dy * r[1, j] + dz * r[2, j] for j in range(3)]


def _border_limit(grid: int, extra: float = 0.0) -> float:
    """Largest |coordinate| a cell point may reach (3 voxels + margin from the border)."""
    return 1.0 - (BORDER_VOXELS + 1.0) * _voxel(grid) - extra


# ---------------------------------------------------------------------------
# "divide"
# ---------------------------------------------------------------------------
def _divide_params(seed: int, h: float) -> dict:
    rng = np.random.default_rng(seed)
    rot = _random_rotation(rng)  # column 0: division axis
    r0 = rng.uniform(0.35, 0.38)
    scale = np.array([1.0, rng.uniform(0.93, 1.03), rng.uniform(0.93, 1.03)])
    centre = rng.uniform(-0.025, 0.025, size=3)
    neck_min = max(1.5 * h, 0.045) / min(scale[1:].min(), 1.0)
    p = dict(rot=rot, r0=r0, scale=scale, centre=centre, neck_min=neck_min, h=h)
    # farthest any cell point gets from the origin (lobe centres lie on the
    # unscaled division axis; the smooth union adds at most k/4)
    reach = max(s + (r_l + k / 4) * scale.max() for r_l, s, k in
                (_divide_state(p, u) for u in np.linspace(0, 1, 101)))
    p["bound"] = float(np.linalg.norm(centre) + reach)
    return p


def _divide_state(p: dict, u: float):
    """Lobe radius, half-separation and smoothing width at time u."""
    k = _DIV_SMOOTH_K
    grow = 1.0 + _DIV_GROWTH * _smoothstep(u / _DIV_ABSCISSION)
    big_r = p["r0"] * grow
    r_d = big_r * 2.0 ** (-1.0 / 3.0)  # daughter radius: half the volume
    if u < _DIV_ABSCISSION:
        x = np.clip((u - _DIV_ELONGATE_START) / (_DIV_ABSCISSION - _DIV_ELONGATE_START), 0.0, 1.0)
        r_l = (1 - x) * (big_r - k / 4) + x * r_d
        neck = (1 - x) * (r_l + k / 4) + x * p["neck_min"]
        s = np.sqrt(max((r_l + k / 4) ** 2 - neck**2, 0.0))
        return r_l, s, k
    x = (u - _DIV_ABSCISSION) / (1.0 - _DIV_ABSCISSION)
    r_end = p["r0"] * (1.0 + _DIV_GROWTH) * 2.0 ** (-1.0 / 3.0)
    r_l = r_end * (1.0 + 0.04 * x)
    s_abs = np.sqrt((r_end + k / 4) ** 2 - p["neck_min"] ** 2)
    s = max(s_abs, r_l + 1.5 * p["h"]) + 0.03 * x
    return r_l, s, 0.0


def _divide_frame_mask(coords, p: dict, u: float) -> np.ndarray:
    r_l, s, k = _divide_state(p, u)
    a, b, c = _local(*coords, p["centre"], p["rot"])
    b = b / np.float32(p["scale"][1])
    c = c / np.float32(p["scale"][2])
    bc2 = b * b + c * c
    f1 = np.sqrt((a - np.float32(s)) ** 2 + bc2) - np.float32(r_l)
    f2 = np.sqrt((a + np.float32(s)) ** 2 + bc2) - np.float32(r_l)
    return _smin(f1, f2, k) <= 0


# ---------------------------------------------------------------------------
# "filo"
# ---------------------------------------------------------------------------
def _well_separated_directions(rng, count: int, min_angle_deg: float) -> list[np.ndarray]:
    cos_max = np.cos(np.deg2rad(min_angle_deg))
    dirs: list[np.ndarray] = []
    while len(dirs) < count:
        d = _random_direction(rng)
        if all(float(d @ e) < cos_max for e in dirs):
            dirs.append(d)
    return dirs


def _max_length_inside(points_fn, s_max: float, limit: float) -> float:
    """Largest s <= s_max with every path point up to s within [-limit, limit]^3."""
    s = np.linspace(0.0, s_max, 200)
    pts = points_fn(s)
    ok = np.all(np.abs(pts) <= limit, axis=1)
    if ok.all():
        return s_max
    first_bad = int(np.argmin(ok))
    return float(s[max(first_bad - 1, 0)])


def _filo_params(seed: int, h: float, limit: float) -> dict:
    rng = np.random.default_rng(seed)
    rad_base = max(_FILO_RADIUS_BASE, _FILO_MIN_RADIUS_VOX * h)
    rad_tip = max(_FILO_RADIUS_TIP, _FILO_MIN_RADIUS_VOX * h)
    limit = limit - rad_base  # tube axes stay this far inside
    centre = rng.uniform(-0.05, 0.05, size=3)
    rot = _random_rotation(rng)
    radii = _FILO_BODY_RADIUS * rng.uniform(0.92, 1.08, size=3)
    breathe_phase = rng.uniform(0, 2 * np.pi)

    n_filo = int(rng.integers(4, 8))  # 4..7
    dirs = _well_separated_directions(rng, n_filo, 40.0)
    tubes = []
    for i, d in enumerate(dirs):
        # where the direction leaves the (rest-state) ellipsoid
        t_surf = 1.0 / np.linalg.norm((rot.T @ d) / radii)
        base = centre + 0.8 * t_surf * d
        bend_dir = _unit(np.cross(d, _random_direction(rng)))
        curv = rng.uniform(-0.35, 0.35)
        length = 0.2 * t_surf + rng.uniform(0.28, 0.55)

        def path(s, base=base, d=d, bend_dir=bend_dir, curv=curv):
            s = np.atleast_1d(s)[:, None]
            return base + s * d + curv * s * s * bend_dir

        length = _max_length_inside(path, length, limit)
        onset = rng.uniform(0.0, 0.35)
        duration = rng.uniform(0.3, 0.55)
        tubes.append(dict(path=path, length=length, onset=onset, duration=duration))

    # side branches: always on the longest filopodium, sometimes on others
    longest = int(np.argmax([t["length"] for t in tubes]))
    branches = []
    for i, tube in enumerate(tubes):
        wants = rng.random() < 0.3
        if i != longest and not wants:
            continue
        if i == longest:
            # make sure the parent is fully grown before its branch appears
            tube["onset"] = min(tube["onset"], 0.1)
            tube["duration"] = min(tube["duration"], 0.4)
        frac = rng.uniform(0.35, 0.6)
        s_b = frac * tube["length"]
        start = tube["path"](s_b)[0]
        tangent = _unit(tube["path"](s_b + 1e-3)[0] - start)
        perp = _unit(np.cross(tangent, _random_direction(rng)))
        theta = np.deg2rad(rng.uniform(35, 60))
        d_b = np.cos(theta) * tangent + np.sin(theta) * perp
        b_len = rng.uniform(0.14, 0.26)

        def bpath(s, start=start, d_b=d_b):
            s = np.atleast_1d(s)[:, None]
            return start + s * d_b

        b_len = _max_length_inside(bpath, b_len, limit)
        # the parent must already reach past the branch point at the onset
        reach = min((s_b + 0.05) / max(tube["length"], 1e-9), 1.0)
        t_reach = tube["onset"] + tube["duration"] * _inverse_smoothstep(reach)
        onset = max(rng.uniform(0.5, 0.6), t_reach)
        duration = max(0.85 - onset, 0.1)
        if b_len > 3 * h:
            branches.append(dict(path=bpath, length=b_len, onset=onset, duration=duration, parent=i))
    # tubes are clipped to the border; the bound keeps 0.3 of room for them
    bound = float(np.linalg.norm(centre) + radii.max() * 1.03 + _FILO_SMOOTH_K / 4 + 0.3)
    return dict(
        centre=centre, rot=rot, radii=radii, breathe_phase=breathe_phase,
        tubes=tubes, branches=branches, rad_base=rad_base, rad_tip=rad_tip, h=h, bound=bound,
    )


def _inverse_smoothstep(y: float) -> float:
    # smoothstep is monotone on [0, 1]: invert by bisection (scalar, cheap)
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if _smoothstep(mid) < y:
            lo = mid
        else:
            hi = mid
    return hi


def _grown_length(tube: dict, u: float) -> float:
    return tube["length"] * float(_smoothstep((u - tube["onset"]) / tube["duration"]))


def _draw_tube(field: np.ndarray, axis: np.ndarray, path, length: float, full: float,
               rad_base: float, rad_tip: float) -> None:
    """Min-combine a (tapered) tube along path(0..length) into field, in place.

    ``full`` is the tube's full-grown length (the taper runs over it). Each
    polyline segment is evaluated only inside its bounding box.
    """
    n = field.shape[0]
    h = float(axis[1] - axis[0])
    nseg = max(int(np.ceil(length / _FILO_SEGMENT)), 1)
    s = np.linspace(0.0, length, nseg + 1)
    pts = path(s)
    rads = rad_base + (rad_tip - rad_base) * (s / max(full, 1e-9))
    for j in range(nseg):
        p0, p1 = pts[j], pts[j + 1]
        r0, r1 = rads[j], rads[j + 1]
        rmax = max(r0, r1)
        lo = np.minimum(p0, p1) - rmax - h
        hi = np.maximum(p0, p1) + rmax + h
        i0 = np.clip(np.floor((lo - axis[0]) / h).astype(int), 0, n - 1)
        i1 = np.clip(np.ceil((hi - axis[0]) / h).astype(int) + 1, 0, n)
        if np.any(i1 <= i0):
            continue
        x = axis[i0[0]:i1[0], None, None] - np.float32(p0[0])
        y = axis[None, i0[1]:i1[1], None] - np.float32(p0[1])
        z = axis[None, None, i0[2]:i1[2]] - np.float32(p0[2])
        seg = (p1 - p0).astype(np.float32)
        seg_len2 = float(seg @ seg)
        if seg_len2 < 1e-12:
            tt = np.zeros((1, 1, 1), dtype=np.float32)
        else:
            tt = np.clip((x * seg[0] + y * seg[1] + z * seg[2]) / np.float32(seg_len2), 0, 1)
        dx, dy, dz = x - tt * seg[0], y - tt * seg[1], z - tt * seg[2]
        dist = np.sqrt(dx * dx + dy * dy + dz * dz) - (np.float32(r0) + tt * np.float32(r1 - r0))
        sub = field[i0[0]:i1[0], i0[1]:i1[1], i0[2]:i1[2]]
        np.minimum(sub, dist, out=sub)


def _filo_frame_mask(coords, axis, p: dict, u: float) -> np.ndarray:
    n = axis.shape[0]
    breathe = 1.0 + 0.03 * np.sin(2 * np.pi * u + p["breathe_phase"])
    radii = p["radii"] * breathe
    a, b, c = _local(*coords, p["centre"], p["rot"])
    q = np.sqrt((a / np.float32(radii[0])) ** 2 + (b / np.float32(radii[1])) ** 2
                + (c / np.float32(radii[2])) ** 2)
    body = (q - np.float32(1.0)) * np.float32(radii.min())
    tubes = np.full((n, n, n), _BIG, dtype=np.float32)
    for tube in p["tubes"]:
        L = _grown_length(tube, u)
        if L > 0:
            _draw_tube(tubes, axis, tube["path"], L, tube["length"], p["rad_base"], p["rad_tip"])
    for br in p["branches"]:
        L = _grown_length(br, u)
        if L > 0:
            # the branch only exists where its parent has grown past its start
            _draw_tube(tubes, axis, br["path"], L, br["length"], p["rad_tip"] + 0.25 * (p["rad_base"] - p["rad_tip"]),
                       p["rad_tip"])
    return _smin(body, tubes, _FILO_SMOOTH_K) <= 0


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


def _deform_params(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    r0 = rng.uniform(0.36, 0.42)
    amps = np.concatenate([rng.normal(0, 0.16, 5), rng.normal(0, 0.08, 7)])
    freqs = rng.uniform(0.25, 0.75, size=12)
    phases = rng.uniform(0, 2 * np.pi, size=12)
    breathe_phase = rng.uniform(0, 2 * np.pi)
    start = rng.uniform(-0.05, 0.05, size=3)
    move = _random_direction(rng) * rng.uniform(0.05, 0.10)
    sway = _unit(np.cross(move, _random_direction(rng))) * rng.uniform(0.0, 0.02)
    bound = (np.linalg.norm(start) + 0.5 * np.linalg.norm(move) + np.linalg.norm(sway)
             + r0 * (1.03 + _MAX_DELTA))
    return dict(r0=r0, amps=amps, freqs=freqs, phases=phases, breathe_phase=breathe_phase,
                start=start, move=move, sway=sway, bound=float(bound))


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
    radius = np.float32(p["r0"]) * (np.float32(1.0 + breathe) + delta)
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


def _params(kind: str, grid: int, seed: int):
    """Shape parameters and the shrink factor ``sigma`` (<= 1) for this grid.

    Geometry is in world units. If the grid is too coarse for a cell to keep
    ``BORDER_VOXELS`` (+1 margin) empty voxels at every face, the cell is
    shrunk about the origin by ``sigma`` (the cell is evaluated at ``p /
    sigma``); in its own coordinates the voxel size is then ``h / sigma``. At
    64^3 and finer ``sigma == 1`` for every seed.
    """
    h, limit = _voxel(grid), _border_limit(grid)
    sigma = 1.0
    for _ in range(20):
        if kind == "divide":
            p = _divide_params(seed, h / sigma)
        elif kind == "filo":
            p = _filo_params(seed, h / sigma, limit / sigma)
        else:
            p = _deform_params(seed)
        if p["bound"] <= limit / sigma:
            return p, sigma
        sigma = limit / p["bound"] * 0.999
    raise RuntimeError("could not fit the phantom into the grid")  # pragma: no cover


def phantom_sequence(kind: str, grid: int = 64, frames: int = 12, seed: int = 0) -> np.ndarray:
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

    Returns
    -------
    numpy.ndarray
        bool array of shape ``(T, grid, grid, grid)``, axes ``(T, X, Y, Z)``,
        True inside the cell.
    """
    _check(kind, grid, frames)
    p, sigma = _params(kind, grid, seed)
    inv = np.float32(1.0 / sigma)
    axis = _axis_coords(grid) * inv
    coords = (axis[:, None, None], axis[None, :, None], axis[None, None, :])
    out = np.empty((frames, grid, grid, grid), dtype=bool)
    for t, u in enumerate(_times(frames)):
        u = float(u)
        if kind == "divide":
            out[t] = _divide_frame_mask(coords, p, u)
        elif kind == "filo":
            out[t] = _filo_frame_mask(coords, axis, p, u)
        else:
            out[t] = _deform_frame_mask(coords, p, u)
    return out


def division_frame(kind: str, grid: int = 64, frames: int = 12, seed: int = 0) -> int | None:
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
