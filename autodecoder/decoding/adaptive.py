"""Adaptive extraction: decode a frame densely only where its surface can be.

The mask ``sdf <= level`` (and a marching-cubes mesh at ``level``) depends on
the network only near the surface. Here a frame is decoded on a coarse lattice
(every ``coarse``-th voxel, plus the last voxel of each axis), and then, step
by step (lattice step 8 → 4 → 2 → 1 voxels), only inside the lattice cells
where the level set can pass; everywhere else its side is already certain.

**The bound.** If ``|f(p) - f(q)| <= L·|p - q|`` (coordinates in [-1, 1]),
every point of a lattice cell lies within half the cell's diagonal ``r`` of one
of its corners, so a cell whose corner values all exceed ``level + L·r`` (or
all stay below ``level - L·r``) holds no point on the other side of the level.
The network is not an exact distance function, so ``L`` is not its true
constant but a bound derived from the data's scale with a margin: the training
SDFs are distances divided by the outer clamp, 32 voxels of a 256³ grid, so one
SDF unit is ``sdf_unit`` = 64/255 ≈ 0.25 in grid coordinates (the demo data
clamp 8 voxels of 64³, the same share). An exact SDF then changes by at most
``1/sdf_unit`` ≈ 4 per coordinate unit; the discrete training SDFs (outer
minus inner distance transform) jump by two voxels across the surface (slope
≈ 8), and trained networks are steeper still in places between their samples
(up to about 26 between neighbouring voxels on the demo model at 256³ and 61
on a released-architecture model). ``L = safety / sdf_unit`` with ``safety`` 5
by default (``AdaptiveSafety`` in specs.json), i.e. L ≈ 20: 2.5 times the
data's slope. It is validated, not proven, and backed up by a margin on
bounded voxels and by following cut cells until none opens (see
:func:`decode_adaptive`): ``benchmarks/validate_adaptive.py``
compares masks with dense decoding (on the demo model and on a
released-architecture model, every frame at 128³ and three frames per
sequence at 256³ agree on every voxel at 0 and 0.035, with no lost component,
with 6–17× fewer network evaluations; the table is in benchmarks/README.md).

**What is stored.** Every voxel that the bound leaves undecided, and every
voxel at a corner of a voxel cell that a level cuts, holds the network's value
(the same as dense decoding): masks ``sdf <= level`` and marching-cubes
surfaces at the levels asked for equal those of dense decoding. Every other
voxel holds the trilinear interpolation of the corner values of the coarsest
lattice cell whose side was settled (near the band: that value clipped to the
interval the bound gives): on the same side of every level as the network,
and at least ``L·r`` beyond it, but not the network's value. Such values are
rounded to :data:`PLACEHOLDER_STEP` (2⁻¹⁰ SDF units, 1/32 of a voxel on a 256³
grid) unless that would move them across a level: their low bits carry no
information and, kept, made a compact 256³ × 30 file 15 % larger (102 MB, not 89 MB).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np

from autodecoder.experiment.keys import default

#: Coordinate length of one SDF unit in the training data: 32 voxels of a 256³ grid.
SDF_UNIT = 64 / 255
#: Lattice step (voxels) of the first, dense, coarse decoding.
COARSE = 8
#: New lattice points of steps below this are bounded before they are evaluated (see decode_adaptive).
CERTIFY_BELOW = 4
#: A bounded point settles its side only if its interval clears every level by this share of ``L`` × one voxel.
CERTIFY_MARGIN = 1 / 8


#: Step (SDF units, a power of two) to which voxels without a network value are rounded: they only say on
#: which side of the levels a voxel lies, and their random low bits would take most of a compressed file.
PLACEHOLDER_STEP = 2.0 ** -10


def _round_placeholders(values: np.ndarray, exact: np.ndarray, levels: np.ndarray, slab: int = 16) -> None:
    """Round the voxels of ``values`` that are not ``exact`` to :data:`PLACEHOLDER_STEP`, in place, except
    where rounding would move one to the other side of a level (masks stay the same)."""
    step = np.float32(PLACEHOLDER_STEP)
    for a0 in range(0, values.shape[0], slab):
        v, e = values[a0:a0 + slab], exact[a0:a0 + slab]
        r = np.round(v / step) * step  # exact in float32: step is a power of two
        keep_side = ~e
        for lev in levels:
            keep_side &= (r <= lev) == (v <= lev)
        np.copyto(v, r, where=keep_side)


def lipschitz_bound(safety: float | None = None, sdf_unit: float = SDF_UNIT) -> float:
    """The slope bound ``L`` (SDF units per coordinate unit) used to decide cells: ``safety / sdf_unit``,
    ``safety`` the margin on the exact-SDF slope (default: the ``AdaptiveSafety`` default of specs.json)."""
    safety = default("AdaptiveSafety") if safety is None else safety
    return float(safety) / float(sdf_unit)


def _lattice(n: int, step: int) -> np.ndarray:
    """Indices of the lattice of step ``step`` on an axis of ``n`` voxels: 0, step, 2·step, …, and n-1."""
    idx = np.arange(0, n, step)
    if idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return idx


def _interp_axis(v: np.ndarray, src: np.ndarray, dst: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``v`` (sampled at ``src`` along ``axis``) at ``dst`` ⊇ ``src``."""
    if len(src) == 1:
        return np.repeat(v, len(dst), axis=axis)
    j = np.clip(np.searchsorted(src, dst, side="right") - 1, 0, len(src) - 2)
    w = ((dst - src[j]) / (src[j + 1] - src[j])).astype(np.float32)
    shape = [1, 1, 1]
    shape[axis] = len(dst)
    w = w.reshape(shape)
    out = np.take(v, j, axis=axis) * (1 - w)
    out += np.take(v, j + 1, axis=axis) * w  # w is 0 or 1 at lattice points: their values stay exact
    return out


def _embed(mask: np.ndarray, src: list[np.ndarray], dst: list[np.ndarray]) -> np.ndarray:
    """A boolean array on lattice ``dst`` ⊇ ``src``: ``mask`` at the points of ``src``, False elsewhere."""
    out = np.zeros(tuple(len(d) for d in dst), dtype=bool)
    pos = [np.searchsorted(d, s) for s, d in zip(src, dst)]
    out[np.ix_(*pos)] = mask
    return out


def _cell_extrema(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min and max over the 8 corners of every lattice cell of ``v`` (a degenerate axis has one cell)."""
    lo = hi = v
    for axis in range(3):
        if lo.shape[axis] > 1:
            a0 = [slice(None)] * 3
            a1 = [slice(None)] * 3
            a0[axis] = slice(0, -1)
            a1[axis] = slice(1, None)
            lo = np.minimum(lo[tuple(a0)], lo[tuple(a1)])
            hi = np.maximum(hi[tuple(a0)], hi[tuple(a1)])
    return lo, hi


def _half_diagonals(lats: list[np.ndarray], spacing: list[float]) -> np.ndarray:
    """Half the diagonal of every lattice cell, in coordinate units, shape of the cell array."""
    sq = 0.0
    for axis, (lat, h) in enumerate(zip(lats, spacing)):
        ext = np.diff(lat).astype(np.float64) * h if len(lat) > 1 else np.zeros(1)
        shape = [1, 1, 1]
        shape[axis] = len(ext)
        sq = sq + (ext.reshape(shape) / 2) ** 2
    return np.sqrt(sq)


def _corners_of(cells: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Lattice points (array of ``shape``) that are a corner of a True cell."""
    out = np.zeros(shape, dtype=bool)
    offs = [(0, 1) if shape[a] > 1 else (0,) for a in range(3)]
    n = cells.shape
    for da in offs[0]:
        for db in offs[1]:
            for dc in offs[2]:
                out[da:da + n[0], db:db + n[1], dc:dc + n[2]] |= cells
    return out


def _parents(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """For every cell of lattice ``fine``, the index of the ``coarse`` cell that contains it."""
    n_cells = max(len(coarse) - 1, 1)
    starts = fine[:-1] if len(fine) > 1 else fine
    return np.clip(np.searchsorted(coarse, starts, side="right") - 1, 0, n_cells - 1)


def _slabs(mask: np.ndarray, budget: int = 1 << 20) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The True points of ``mask`` as index arrays, in slabs along the first axis of about ``budget`` points."""
    counts = mask.reshape(mask.shape[0], -1).sum(axis=1)
    a0 = 0
    while a0 < mask.shape[0]:
        a1, total = a0, 0
        while a1 < mask.shape[0] and (a1 == a0 or total + counts[a1] <= budget):
            total += counts[a1]
            a1 += 1
        if total:
            a, b, c = np.nonzero(mask[a0:a1])
            yield a + a0, b, c
        a0 = a1


def _certify(cand: tuple[np.ndarray, np.ndarray, np.ndarray], new_lats: list[np.ndarray], lats: list[np.ndarray],
             lo: np.ndarray, hi: np.ndarray, valid: np.ndarray, spacing: list[float],
             lip: float) -> tuple[np.ndarray, np.ndarray]:
    """Intervals ``[max f(c) - L·d, min f(c) + L·d]`` of new lattice points from the valid corners of their cell."""
    m = len(cand[0])
    lo_p = np.full(m, -np.inf, dtype=np.float32)
    hi_p = np.full(m, np.inf, dtype=np.float32)
    par, off = [], []
    for axis in range(3):
        x = new_lats[axis][cand[axis]]
        n_cells = max(len(lats[axis]) - 1, 1)
        j = np.clip(np.searchsorted(lats[axis], x, side="right") - 1, 0, n_cells - 1)
        par.append(j)
        off.append(x)
    for da in (0, 1):
        ka = np.minimum(par[0] + da, len(lats[0]) - 1)
        d2a = ((off[0] - lats[0][ka]) * spacing[0]).astype(np.float32) ** 2
        for db in (0, 1):
            kb = np.minimum(par[1] + db, len(lats[1]) - 1)
            d2ab = d2a + ((off[1] - lats[1][kb]) * spacing[1]).astype(np.float32) ** 2
            for dc in (0, 1):
                kc = np.minimum(par[2] + dc, len(lats[2]) - 1)
                d = lip * np.sqrt(d2ab + ((off[2] - lats[2][kc]) * spacing[2]).astype(np.float32) ** 2)
                ok = valid[ka, kb, kc]
                np.maximum(lo_p, np.where(ok, lo[ka, kb, kc] - d, -np.inf), out=lo_p)
                np.minimum(hi_p, np.where(ok, hi[ka, kb, kc] + d, np.inf), out=hi_p)
    return lo_p, hi_p


def decode_adaptive(evaluate: Callable[[np.ndarray], np.ndarray], dims: tuple[int, int, int],
                    levels: Iterable[float] = (0.0,), lipschitz: float | None = None, coarse: int = COARSE,
                    stats: dict | None = None, certify_below: int = CERTIFY_BELOW,
                    spacing: tuple[float, float, float] | None = None) -> np.ndarray:
    """One frame, float32 ``dims``, decoded densely only near the level sets ``levels``.

    Args:
        evaluate: SDF at flat (C-order) voxel indices, int64 (m,) → float32 (m,).
        dims: the grid ``(N0, N1, N2)``; voxel centres span [-1, 1].
        levels: the iso-levels whose masks and surfaces must be exact (0, and e.g.
            the 0.035 of filopodial cells).
        lipschitz: the slope bound ``L`` (default :func:`lipschitz_bound`).
        coarse: lattice step of the first decoding, rounded down to a power of two.
        stats: if given, ``stats["evaluations"]`` is increased by the number of
            network evaluations (= voxels holding the network's value).
        certify_below: lattice steps (voxels) at which new points are first
            bounded and evaluated only when the bound leaves their side open.
        spacing: distance between neighbouring voxels along each axis in the units of the
            slope bound (default ``2 / (N - 1)``: the grid spans [-1, 1]); another spacing
            for a grid that covers only part of the model's cube, anisotropic ones included.

    Every lattice point holds an interval ``[lo, hi]`` known to contain the
    network's value (a single value where evaluated). A cell of a lattice is
    refined only when its corners' intervals, widened by ``L·r``, do not settle
    the side of its whole box. The points of the next lattice inside refined
    cells are evaluated; on the finest steps (``certify_below``) a point first
    gets the interval ``[max f(c) - L·|p - c|, min f(c) + L·|p - c|]`` over the
    corners ``c`` of its cell, and is evaluated only when that interval does
    not settle its side of every level with a margin of ``L``·(one voxel)/8
    (else it stores the interpolated value, clipped to the interval). Last,
    every voxel that is a corner of a voxel cell whose corners lie on both
    sides of a level is made exact, so marching
    cubes sees network values on every edge it cuts; as new values can open new
    cut cells next to them, this is repeated around them until none opens (the
    surface is followed, and a pocket that the bound missed beside it is found).
    Voxels left without a network value are rounded (:func:`_round_placeholders`).
    """
    dims = tuple(int(n) for n in dims)
    lip = lipschitz_bound() if lipschitz is None else float(lipschitz)
    ex = _Extraction(evaluate, dims, levels, lip, certify_below, spacing)
    ex.start(1 << max(0, int(math.floor(math.log2(max(1, coarse))))))
    while ex.step > 1 and ex.refine():
        pass
    values, exact = ex.finish()
    if stats is not None:
        stats["evaluations"] = stats.get("evaluations", 0) + int(ex.n_eval)
        if "exact" in stats:  # the caller asked for the voxels that hold network values
            stats["exact"] = exact
    return np.ascontiguousarray(values, dtype=np.float32)


class _Extraction:
    """The state of :func:`decode_adaptive` on one frame: the current lattice (its coordinates ``lats``,
    values, intervals ``lo``/``hi``, which points are exact or bounded, which cells are still open)."""

    def __init__(self, evaluate: Callable[[np.ndarray], np.ndarray], dims: tuple[int, int, int],
                 levels: Iterable[float], lip: float, certify_below: int,
                 spacing: tuple[float, float, float] | None = None) -> None:
        self.evaluate, self.dims, self.lip, self.certify_below = evaluate, dims, lip, certify_below
        self.levels = np.asarray(sorted(set(float(v) for v in levels)), dtype=np.float32)
        default = [2.0 / (n - 1) if n > 1 else 0.0 for n in dims]
        self.spacing = default if spacing is None else [float(s) if n > 1 else 0.0 for s, n in zip(spacing, dims)]
        # a bounded point must clear every level by an eighth of the bound's change over one voxel: trained
        # networks dip below the bound by a few hundredths at single voxels (one such dip under 0.035, 0.015
        # beyond the bound, was seen at 256³); this costs about 8 % more evaluations
        steps = [h for h in self.spacing if h > 0]
        self.certify_margin = CERTIFY_MARGIN * lip * min(steps) if steps else 0.0
        self.strides = (dims[1] * dims[2], dims[2], 1)
        self.n_eval = 0

    def run(self, lats: list[np.ndarray], a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        """The network at lattice points ``(a, b, c)`` of ``lats``."""
        self.n_eval += len(a)
        if not len(a):
            return np.zeros(0, np.float32)
        flat = lats[0][a] * self.strides[0] + lats[1][b] * self.strides[1] + lats[2][c] * self.strides[2]
        return np.asarray(self.evaluate(flat), dtype=np.float32)

    def settled(self, lo: np.ndarray, hi: np.ndarray, margin: np.ndarray | float = 0.0) -> np.ndarray:
        """Where ``[lo - margin, hi + margin]`` lies on one side of every level."""
        ok = np.ones(np.broadcast(lo, hi).shape, dtype=bool)
        for lev in self.levels:
            ok &= (lo - lev > margin) | (hi - lev < -margin)
        return ok

    def start(self, step: int) -> None:
        """Decode the coarse lattice of ``step`` voxels densely."""
        self.step = step
        self.lats = [_lattice(n, step) for n in self.dims]
        shape = tuple(len(l) for l in self.lats)
        self.values = self.run(self.lats, *np.indices(shape).reshape(3, -1)).reshape(shape)
        self.lo = self.hi = self.values
        self.exact = self.valid = np.ones(shape, dtype=bool)
        self.active = np.ones(tuple(max(s - 1, 1) for s in shape), dtype=bool)  # cells still to test

    def refine(self) -> bool:
        """Halve the step inside the cells the bound leaves open; False when none is open."""
        cell_lo, _ = _cell_extrema(self.lo)
        _, cell_hi = _cell_extrema(self.hi)
        undecided = self.active & ~self.settled(cell_lo, cell_hi, self.lip * _half_diagonals(self.lats, self.spacing))
        if not undecided.any():
            return False
        self.step //= 2
        lats = self.lats
        new_lats = [_lattice(n, self.step) for n in self.dims]
        new_shape = tuple(len(l) for l in new_lats)
        new_active = undecided[np.ix_(*[_parents(new_lats[a], lats[a]) for a in range(3)])]
        v = self.values
        for axis in range(3):
            v = _interp_axis(v, lats[axis], new_lats[axis], axis)
        pos = np.ix_(*[np.searchsorted(d, s_) for s_, d in zip(lats, new_lats)])
        new_exact = np.zeros(new_shape, dtype=bool)
        new_exact[pos] = self.exact
        new_valid = np.zeros(new_shape, dtype=bool)
        new_valid[pos] = self.valid
        last = self.step == 1  # the voxels themselves: no further cell test needs their intervals
        new_lo, new_hi = (None, None) if last else (v.copy(), v.copy())
        if not last:
            new_lo[pos], new_hi[pos] = self.lo, self.hi
        cand_mask = _corners_of(new_active, new_shape) & ~new_valid
        for cand in _slabs(cand_mask):  # a slab at a time: bounded temporaries
            self._fill(cand, new_lats, v, new_lo, new_hi, new_exact, new_valid)
        self.values, self.lo, self.hi, self.exact, self.valid = v, new_lo, new_hi, new_exact, new_valid
        self.active, self.lats = new_active, new_lats
        return True

    def _fill(self, cand: tuple[np.ndarray, ...], new_lats: list[np.ndarray], v: np.ndarray, new_lo, new_hi,
              new_exact: np.ndarray, new_valid: np.ndarray) -> None:
        """Bound (on the finest steps) or evaluate the new lattice points ``cand``."""
        last = new_lo is None
        if self.step < self.certify_below:
            lo_p, hi_p = _certify(cand, new_lats, self.lats, self.lo, self.hi, self.valid, self.spacing, self.lip)
            sure = self.settled(lo_p, hi_p, self.certify_margin)
            sc = tuple(c[sure] for c in cand)
            if not last:
                new_lo[sc], new_hi[sc] = lo_p[sure], hi_p[sure]
            v[sc] = np.clip(v[sc], lo_p[sure], hi_p[sure])
            new_valid[sc] = True
            cand = tuple(c[~sure] for c in cand)
        got = self.run(new_lats, *cand)
        v[cand] = got
        if not last:
            new_lo[cand] = got
            new_hi[cand] = got
        new_exact[cand] = True
        new_valid[cand] = True

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, exact) on the voxel grid, with every corner of a voxel cell that a level cuts exact."""
        values, exact, lats = self.values, self.exact, self.lats
        if self.step != 1:  # settled everywhere before the finest level: interpolate the rest
            fine = [np.arange(n) for n in self.dims]
            for axis in range(3):
                values = _interp_axis(values, lats[axis], fine[axis], axis)
            exact = _embed(exact, lats, fine)
            lats = fine
        fix = self._cut_corners(values) & ~exact  # marching cubes reads every corner of a cut cell
        while True:
            new = list(_slabs(fix))
            for cand in new:
                values[cand] = self.run(lats, *cand)
                exact[cand] = True
            if not new:
                break
            # a new value on the other side of a level than a neighbour's opens new cut cells: follow the
            # surface until every cut cell is exact (this also finds small pockets the bound missed next to it)
            fix = self._new_cut_corners(values, exact, new)
        _round_placeholders(values, exact, self.levels)
        return values, exact

    def _new_cut_corners(self, values: np.ndarray, exact: np.ndarray,
                         new: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
        """Voxels (not exact) in the 3×3×3 neighbourhood of a newly evaluated voxel that has a neighbour on
        the other side of a level: every corner of the cut cells around it."""
        fix = np.zeros(values.shape, dtype=bool)
        shape = np.array(values.shape)
        offsets = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
        for a, b, c in (tuple(x[i:i + 65536] for x in cand) for cand in new for i in range(0, len(cand[0]), 65536)):
            p = np.stack([a, b, c], axis=1)
            q = np.clip(p[:, None, :] + offsets[None], 0, shape - 1)  # (m, 27, 3)
            vq = values[q[..., 0], q[..., 1], q[..., 2]]
            vp = values[a, b, c][:, None]
            cut = np.zeros(len(a), dtype=bool)
            for lev in self.levels:
                cut |= np.any((vq <= lev) != (vp <= lev), axis=1)
            if cut.any():
                qc = q[cut].reshape(-1, 3)
                fix[qc[:, 0], qc[:, 1], qc[:, 2]] = True
        return fix & ~exact

    def _cut_corners(self, values: np.ndarray) -> np.ndarray:
        """Voxels at a corner of a voxel cell whose corners lie on both sides of a level (in slabs of 16)."""
        fix = np.zeros(values.shape, dtype=bool)
        n0 = values.shape[0]
        extra = 1 if n0 > 1 else 0
        for a0 in range(0, max(n0 - 1, 1), 16):
            a1 = min(a0 + 16, max(n0 - 1, 1))
            vmin, vmax = _cell_extrema(values[a0:a1 + 1])
            cut = np.zeros(vmin.shape, dtype=bool)
            for lev in self.levels:
                cut |= (vmin <= lev) & (vmax > lev)
            fix[a0:a0 + cut.shape[0] + extra] |= _corners_of(cut, (cut.shape[0] + extra,) + values.shape[1:])
        return fix
