"""The filopodial phantom of the demo (kind ``"filo"`` of :mod:`autodecoder.demo.phantoms`): a breathing
ellipsoidal body with 4–7 thin tubes (filopodia) that grow out, bend, and sometimes branch.

Tubes are drawn as polylines of short segments and joined to the body with a smooth minimum; their
radius is never thinner than 1.5 voxels so that they stay connected on the grid.
"""

from __future__ import annotations

import numpy as np

from autodecoder.demo.shapes import BIG, local, random_direction, random_rotation, smin, smoothstep, unit

__all__ = ["filo_params", "filo_frame_mask"]

_FILO_BODY_RADIUS = 0.35
_FILO_RADIUS_BASE = 0.060  # 1.9 voxels at 64^3
_FILO_RADIUS_TIP = 0.051  # 1.6 voxels at 64^3
_FILO_MIN_RADIUS_VOX = 1.5  # never thinner than 3 voxels across
_FILO_SMOOTH_K = 0.05
_FILO_SEGMENT = 0.05  # polyline segment length used to draw bent tubes
#: Most filopodia an override may ask for (directions at least 40° apart must exist).
MAX_FILOPODIA = 12


def _well_separated_directions(rng, count: int, min_angle_deg: float) -> list[np.ndarray]:
    cos_max = np.cos(np.deg2rad(min_angle_deg))
    dirs: list[np.ndarray] = []
    while len(dirs) < count:
        d = random_direction(rng)
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


def _filo_branches(rng: np.random.Generator, tubes: list[dict], limit: float, h: float) -> list[dict]:
    """Side branches: always on the longest filopodium, sometimes on others (draws from ``rng`` after
    the tubes, in the same order as ever, so the phantoms stay bit-identical)."""
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
        tangent = unit(tube["path"](s_b + 1e-3)[0] - start)
        perp = unit(np.cross(tangent, random_direction(rng)))
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
    return branches


def filo_params(seed: int, h: float, limit: float, overrides: dict | None = None) -> dict:
    """The random layout of a filopodial cell: body, tubes (filopodia) and their branches.

    ``overrides`` (see :mod:`autodecoder.demo.phantoms`): ``radius`` (body radius before the per-axis
    factors), ``growth`` (body radius × (1 + growth·u)), ``count`` (filopodia) and ``length`` (factor
    on each filopodium's extension beyond the body); the other draws stay those of ``seed``.
    """
    o = overrides or {}
    rng = np.random.default_rng(seed)
    rad_base = max(_FILO_RADIUS_BASE, _FILO_MIN_RADIUS_VOX * h)
    rad_tip = max(_FILO_RADIUS_TIP, _FILO_MIN_RADIUS_VOX * h)
    limit = limit - rad_base  # tube axes stay this far inside
    centre = rng.uniform(-0.05, 0.05, size=3)
    rot = random_rotation(rng)
    radii = float(o.get("radius", _FILO_BODY_RADIUS)) * rng.uniform(0.92, 1.08, size=3)
    breathe_phase = rng.uniform(0, 2 * np.pi)
    growth = float(o.get("growth", 0.0))

    n_filo = int(rng.integers(4, 8))  # 4..7
    if "count" in o:
        n_filo = int(o["count"])
        if not 0 <= n_filo <= MAX_FILOPODIA:
            raise ValueError(f"filo: count must be 0 … {MAX_FILOPODIA}, got {n_filo}")
    dirs = _well_separated_directions(rng, n_filo, 40.0)
    tubes = []
    for i, d in enumerate(dirs):
        # where the direction leaves the (rest-state) ellipsoid
        t_surf = 1.0 / np.linalg.norm((rot.T @ d) / radii)
        base = centre + 0.8 * t_surf * d
        bend_dir = unit(np.cross(d, random_direction(rng)))
        curv = rng.uniform(-0.35, 0.35)
        length = 0.2 * t_surf + rng.uniform(0.28, 0.55) * float(o.get("length", 1.0))

        def path(s, base=base, d=d, bend_dir=bend_dir, curv=curv):
            s = np.atleast_1d(s)[:, None]
            return base + s * d + curv * s * s * bend_dir

        length = _max_length_inside(path, length, limit)
        onset = rng.uniform(0.0, 0.35)
        duration = rng.uniform(0.3, 0.55)
        tubes.append(dict(path=path, length=length, onset=onset, duration=duration))

    branches = _filo_branches(rng, tubes, limit, h) if tubes else []
    # tubes are clipped to the border; the bound keeps 0.3 of room for them
    bound = float(np.linalg.norm(centre) + radii.max() * 1.03 * (1.0 + max(growth, 0.0)) + _FILO_SMOOTH_K / 4 + 0.3)
    return dict(
        centre=centre, rot=rot, radii=radii, breathe_phase=breathe_phase, growth=growth,
        tubes=tubes, branches=branches, rad_base=rad_base, rad_tip=rad_tip, h=h, bound=bound,
    )


def _inverse_smoothstep(y: float) -> float:
    # smoothstep is monotone on [0, 1]: invert by bisection (scalar, cheap)
    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if smoothstep(mid) < y:
            lo = mid
        else:
            hi = mid
    return hi


def _grown_length(tube: dict, u: float) -> float:
    return tube["length"] * float(smoothstep((u - tube["onset"]) / tube["duration"]))


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


def filo_frame_mask(coords, axis, p: dict, u: float) -> np.ndarray:
    n = axis.shape[0]
    breathe = 1.0 + 0.03 * np.sin(2 * np.pi * u + p["breathe_phase"])
    if p["growth"]:
        breathe = breathe * (1.0 + p["growth"] * u)
    radii = p["radii"] * breathe
    a, b, c = local(*coords, p["centre"], p["rot"])
    q = np.sqrt((a / np.float32(radii[0])) ** 2 + (b / np.float32(radii[1])) ** 2
                + (c / np.float32(radii[2])) ** 2)
    body = (q - np.float32(1.0)) * np.float32(radii.min())
    tubes = np.full((n, n, n), BIG, dtype=np.float32)
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
    return smin(body, tubes, _FILO_SMOOTH_K) <= 0
