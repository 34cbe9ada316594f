"""Where the cells are in the field of view and how they move, frame by frame.

Conventions:
  * Positions are in µm in IMAGE axis order ``(z, y, x)``; z is the optical axis.
  * The field of view is the box ``[0, size_z] x [0, size_y] x [0, size_x]`` µm
    (size = voxels x voxel size).
  * For placement and motion each cell is a bounding sphere of ``radius_um``: the largest
    distance of its surface from its centre over its whole life (the caller computes it).
  * Times are movie frames ``0 .. T-1``; motion parameters are in µm per frame.
  * Two cells are "allowed" at centre distance ``>= r_i + r_j + min_gap_um``. In the
    ``"cluster"`` layout ``min_gap_um`` may be negative: the bounding spheres may overlap by
    that much, because the instance labels are later resolved voxel by voxel (each voxel goes
    to one cell), so the cells touch without overlapping.
  * Randomness: every function takes a ``numpy.random.Generator`` built by the caller from a
    seed and draws exactly one integer key from it. Per-cell streams are then built as
    ``default_rng(SeedSequence([key, PURPOSE, cell]))``, so a cell's draws do not depend on
    how many cells there are (adding a cell at the end leaves the earlier cells' placement
    unchanged; their motion may change only where ``keep_apart`` makes cells interact).
    Same generator state -> same scene, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from numpy.typing import NDArray

from autodecoder.experiment.errors import UserError

_PLACE = 0x5CE1  # purpose keys of the per-cell random streams
_OFFSET = 0x5CE2
_STEP = 0x5CE3
_TOL_UM = 1e-10  # rounding tolerance of the distance checks, µm
LAYOUTS = ("scattered", "cluster")


@dataclass(frozen=True)
class SceneSettings:
    """How cells are placed and moved.

    layout: ``"scattered"`` (uniform, kept apart) or ``"cluster"`` (packed, touching).
    min_gap_um: minimal gap between bounding spheres, µm; cluster: may be negative (allowed
        overlap of bounding spheres, resolved later voxel by voxel).
    max_tries: placement tries per cell (scattered: random positions; cluster: candidates).
    margin_um: distance kept from the field's faces at placement (and by reflection when
        ``may_leave`` is False), µm, in z as well.
    drift_um_per_frame: common drift ``(z, y, x)``, µm per frame.
    step_um: standard deviation of the random-walk step per axis per frame, µm.
    keep_apart: a step that would bring two present cells closer than allowed is not taken
        (the cell stays where it is for that frame).
    may_leave: cells may drift out of the field; a cell whose bounding sphere lies completely
        outside the field is gone for good from that frame on. If False, steps that would
        cross the field's faces (less the margin) are reflected back.
    offset_frames: maximal time offset; each cell's offset is uniform in ``[0, offset_frames]``.
    """

    layout: Literal["scattered", "cluster"] = "scattered"
    min_gap_um: float = 1.0
    max_tries: int = 1000
    margin_um: float = 0.0
    drift_um_per_frame: tuple[float, float, float] = (0.0, 0.0, 0.0)
    step_um: float = 0.0
    keep_apart: bool = True
    may_leave: bool = False
    offset_frames: int = 0

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise UserError(f"scene layout {self.layout!r}: expected one of {', '.join(LAYOUTS)}")
        if not np.isfinite(self.min_gap_um):
            raise UserError(f"scene min_gap_um {self.min_gap_um}: expected a finite number")
        if self.layout == "scattered" and self.min_gap_um < 0:
            raise UserError(f"scene min_gap_um {self.min_gap_um}: expected >= 0 for layout 'scattered'")
        if int(self.max_tries) != self.max_tries or self.max_tries < 1:
            raise UserError(f"scene max_tries {self.max_tries}: expected an integer >= 1")
        for name in ("margin_um", "step_um"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise UserError(f"scene {name} {value}: expected a finite number >= 0")
        drift = np.asarray(self.drift_um_per_frame, dtype=float)
        if drift.shape != (3,) or not np.all(np.isfinite(drift)):
            raise UserError(f"scene drift_um_per_frame {self.drift_um_per_frame}: expected 3 finite numbers (z, y, x)")
        if int(self.offset_frames) != self.offset_frames or self.offset_frames < 0:
            raise UserError(f"scene offset_frames {self.offset_frames}: expected an integer >= 0")


@dataclass(frozen=True)
class Motion:
    """Cell trajectories.

    centres: float64 ``(T, n, 3)`` centres in µm, ``(z, y, x)``; after a cell has left the
        field its centre keeps following its walk but has no meaning.
    present: bool ``(T, n)``; False from the frame on where the cell's bounding sphere lies
        completely outside the field.
    offsets: int64 ``(n,)`` time offsets in frames (see ``cell_time``).
    """

    centres: NDArray[np.float64]
    present: NDArray[np.bool_]
    offsets: NDArray[np.int64]


def _cell_rng(key: int, purpose: int, cell: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([key, purpose, cell]))


def _check_inputs(radii_um: Sequence[float], field_um: Sequence[float]) -> tuple[NDArray, NDArray]:
    radii = np.asarray(radii_um, dtype=np.float64).reshape(-1)
    field = np.asarray(field_um, dtype=np.float64)
    if field.shape != (3,) or not np.all(np.isfinite(field)) or np.any(field <= 0):
        raise UserError(f"scene field_um {tuple(field_um)}: expected 3 positive sizes (z, y, x) in µm")
    if not np.all(np.isfinite(radii)) or np.any(radii < 0):
        raise UserError(f"scene radii_um {radii.tolist()}: expected finite radii >= 0 µm")
    return radii, field


def _no_fit(fitted: int, n: int, field: NDArray, settings: SceneSettings) -> UserError:
    return UserError(
        f"scene: only {fitted} of {n} cells fit in the field {tuple(field.tolist())} µm "
        f"(layout {settings.layout!r}, gap {settings.min_gap_um} µm, margin {settings.margin_um} µm, "
        f"{settings.max_tries} tries): use fewer or smaller cells, a larger field or a smaller gap")


def _allowed(r: float, others: NDArray, gap: float) -> NDArray:
    return r + others + gap - _TOL_UM


def place(radii_um: Sequence[float], field_um: Sequence[float], settings: SceneSettings,
          rng: np.random.Generator) -> NDArray[np.float64]:
    """Initial centres ``(n, 3)`` in µm (z, y, x) of cells with bounding radii ``radii_um`` (µm).

    ``field_um``: field size ``(z, y, x)`` in µm. Scattered: uniform rejection sampling inside
    the field less margin and radius, every pair at ``>= r_i + r_j + min_gap_um``. Cluster: the
    first cell at the field centre, each next one touching the cluster (see ``_place_cluster``).
    Raises ``UserError`` naming how many cells fit when the request cannot be met.
    """
    radii, field = _check_inputs(radii_um, field_um)
    if settings.layout == "cluster" and len(radii) >= 2:
        smallest = np.sort(radii)[:2].sum()
        if smallest + settings.min_gap_um <= 0:
            raise UserError(f"scene min_gap_um {settings.min_gap_um}: expected > -{smallest} "
                            "(minus the two smallest radii), or cells would sit on top of each other")
    key = int(rng.integers(0, 2 ** 63))
    if settings.layout == "cluster":
        return _place_cluster(radii, field, settings, key)
    return _place_scattered(radii, field, settings, key)


def _place_scattered(radii: NDArray, field: NDArray, settings: SceneSettings, key: int) -> NDArray:
    centres = np.zeros((len(radii), 3))
    for i, r in enumerate(radii):
        lo = settings.margin_um + r
        hi = field - settings.margin_um - r
        if np.any(hi < lo):
            raise _no_fit(i, len(radii), field, settings)
        tries = _cell_rng(key, _PLACE, i).uniform(lo, hi, size=(settings.max_tries, 3))
        dist = np.linalg.norm(tries[:, None, :] - centres[None, :i, :], axis=-1)
        ok = np.all(dist >= _allowed(r, radii[:i], settings.min_gap_um), axis=1)
        if not ok.any():
            raise _no_fit(i, len(radii), field, settings)
        centres[i] = tries[np.argmax(ok)]
    return centres


def _place_cluster(radii: NDArray, field: NDArray, settings: SceneSettings, key: int) -> NDArray:
    """Pack cells: each new cell is placed at distance ``r_i + r_j + gap`` from a random existing
    cell ``j`` in a random direction, not closer than allowed to any other and inside the field
    less margin; of the ``max_tries`` candidates the valid one nearest the cluster's centroid wins."""
    n, gap = len(radii), settings.min_gap_um
    centres = np.zeros((n, 3))
    for i, r in enumerate(radii):
        lo, hi = settings.margin_um + r, field - settings.margin_um - r
        if np.any(hi < lo):
            raise _no_fit(i, n, field, settings)
        if i == 0:
            centres[0] = field / 2
            continue
        cell_rng = _cell_rng(key, _PLACE, i)
        anchor = cell_rng.integers(0, i, size=settings.max_tries)
        direction = cell_rng.normal(size=(settings.max_tries, 3))
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-300)
        cand = centres[anchor] + (r + radii[anchor] + gap)[:, None] * direction
        dist = np.linalg.norm(cand[:, None, :] - centres[None, :i, :], axis=-1)
        ok = np.all(dist >= _allowed(r, radii[:i], gap), axis=1)
        ok &= np.all((cand >= lo) & (cand <= hi), axis=1)
        if not ok.any():
            raise _no_fit(i, n, field, settings)
        to_centroid = np.linalg.norm(cand - centres[:i].mean(axis=0), axis=1)
        centres[i] = cand[np.argmin(np.where(ok, to_centroid, np.inf))]
    return centres


def _outside(centre: NDArray, radius: float, field: NDArray) -> bool:
    """True if the sphere lies completely outside the field box."""
    gap = np.maximum(np.maximum(-centre, centre - field), 0.0)
    return bool(np.linalg.norm(gap) > radius)


def _reflect(p: NDArray, lo: NDArray, hi: NDArray) -> NDArray:
    """Reflect ``p`` at the faces of ``[lo, hi]`` (per axis), clipped for very large steps."""
    p = np.where(p < lo, 2 * lo - p, p)
    p = np.where(p > hi, 2 * hi - p, p)
    return np.clip(p, lo, hi)


def _draws(n: int, T: int, settings: SceneSettings, key: int) -> tuple[NDArray, NDArray]:
    """Per-cell offsets ``(n,)`` and steps ``(n, T-1, 3)``: always the same number of draws."""
    offsets = np.array([_cell_rng(key, _OFFSET, i).integers(0, settings.offset_frames + 1)
                        for i in range(n)], dtype=np.int64)
    steps = np.zeros((n, max(T - 1, 0), 3))
    for i in range(n):
        steps[i] = _cell_rng(key, _STEP, i).normal(0.0, 1.0, size=(max(T - 1, 0), 3)) * settings.step_um
    return offsets, steps


def simulate(centres0: NDArray, radii_um: Sequence[float], T: int, field_um: Sequence[float],
             settings: SceneSettings, rng: np.random.Generator) -> Motion:
    """Move cells from ``centres0`` ``(n, 3)`` µm for ``T`` frames (frame 0 = ``centres0``).

    Each frame each cell, in index order, proposes ``centre + drift + step`` (step: normal with
    std ``step_um`` per axis, µm). ``may_leave`` False: the proposal is reflected into the field
    less margin and radius. ``keep_apart``: a proposal closer than allowed to another present
    cell (at its current position) is not taken. A cell whose sphere lies completely outside the
    field is absent from then on (only possible with ``may_leave``).
    """
    radii, field = _check_inputs(radii_um, field_um)
    centres0 = np.asarray(centres0, dtype=np.float64)
    n = len(radii)
    if centres0.shape != (n, 3) or not np.all(np.isfinite(centres0)):
        raise UserError(f"scene centres0 shape {centres0.shape}: expected ({n}, 3) finite centres in µm")
    if int(T) != T or T < 1:
        raise UserError(f"scene T {T}: expected an integer number of frames >= 1")
    lo, hi = settings.margin_um + radii[:, None], field - settings.margin_um - radii[:, None]
    if not settings.may_leave and np.any(hi < lo):
        raise UserError(f"scene: a cell of radius {radii.max()} µm does not fit in the field "
                        f"{tuple(field.tolist())} µm less margin {settings.margin_um} µm")
    offsets, steps = _draws(n, T, settings, int(rng.integers(0, 2 ** 63)))
    drift = np.asarray(settings.drift_um_per_frame, dtype=np.float64)
    centres = np.zeros((T, n, 3))
    present = np.zeros((T, n), dtype=bool)
    centres[0] = centres0
    present[0] = [not _outside(c, r, field) for c, r in zip(centres0, radii)]
    for t in range(1, T):
        now, alive = centres[t - 1].copy(), present[t - 1].copy()
        for i in range(n):
            proposal = now[i] + drift + steps[i, t - 1]
            if not settings.may_leave:
                proposal = _reflect(proposal, lo[i], hi[i])
            if settings.keep_apart and alive[i]:
                others = alive.copy()
                others[i] = False
                dist = np.linalg.norm(now[others] - proposal, axis=1)
                if np.any(dist < _allowed(radii[i], radii[others], settings.min_gap_um)):
                    continue
            now[i] = proposal
            alive[i] = alive[i] and not _outside(proposal, radii[i], field)
        centres[t], present[t] = now, alive
    return Motion(centres=centres, present=present, offsets=offsets)


def cell_time(frame: int, offset: int, life_frames: int) -> float:
    """The cell's own normalised time in ``[-1, 1]`` at movie ``frame`` (frames).

    ``2 * clip((frame + offset) / (life_frames - 1), 0, 1) - 1``: -1 = start of life, 1 = end;
    0 for ``life_frames == 1``.
    """
    if int(life_frames) != life_frames or life_frames < 1:
        raise UserError(f"cell_time life_frames {life_frames}: expected an integer >= 1")
    if life_frames == 1:
        return 0.0
    return float(2.0 * np.clip((frame + offset) / (life_frames - 1), 0.0, 1.0) - 1.0)
