"""Which grid points of a frame are trained on (docs/method.md §2).

Per frame, ``n = int(N0·N1·N2 · fraction)`` points: ``int(0.7·n)`` drawn
uniformly with replacement from the "near" points (SDF ≤ 0.3), or all near
points once when there are fewer; the rest drawn with replacement from the
"far" points. Near points come first.

Every draw uses its own generator derived from a key such as
``(seed, epoch, sequence, frame)``, so a draw does not depend on the order in
which frames are visited, on resuming, or on how work is split.
"""

from __future__ import annotations

import numpy as np

from autodecoder.experiment.errors import UserError

NEAR_THRESHOLD = 0.3
NEAR_SHARE = 0.7

# Purposes of the draws, part of each generator's key: the fixed sample, the
# on-the-fly pool, the on-the-fly per-epoch sample, the per-epoch frame order,
# and the seed of torch's global generator (dropout) at the start of a run.
DRAW_FIXED, DRAW_POOL, DRAW_EPOCH, DRAW_ORDER, DRAW_TORCH = 0, 1, 2, 3, 4


def sample_count(n_voxels: int, fraction: float) -> int:
    """Points drawn per frame: ``int(n_voxels · fraction)`` as the original computes it."""
    return int(n_voxels * fraction)


def rng_for(*key: int) -> np.random.Generator:
    """An independent generator for one draw, from non-negative integer ``key`` parts."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def draw(sdf: np.ndarray, n: int, rng: np.random.Generator, where: str = "frame") -> np.ndarray:
    """Indices (int64, (n,)) into ``sdf`` (any shape, read flat): near points first, then far.

    Raises :class:`UserError` (naming ``where``) when far points are needed but
    the frame has none.
    """
    flat = np.asarray(sdf).reshape(-1)
    near_mask = flat <= NEAR_THRESHOLD
    near = np.flatnonzero(near_mask)
    n_near = int(NEAR_SHARE * n)
    if len(near) < n_near:
        take_near = near
    else:
        take_near = near[rng.integers(0, len(near), size=n_near)] if n_near else near[:0]
    n_far = n - len(take_near)
    if n_far > 0:
        far = np.flatnonzero(~near_mask)
        if len(far) == 0:
            raise UserError(f"{where}: no point with SDF > {NEAR_THRESHOLD} to draw the far samples from "
                            f"(is the SDF normalised, negative inside?)")
        take_far = far[rng.integers(0, len(far), size=n_far)]
    else:
        take_far = near[:0]
    return np.concatenate([take_near, take_far])


# --------------------------------------------------------------------------
# fresh sampling from a bounded pool (this project's "FreshSampling" option)

#: Purposes of the fresh-sampling draws (continuing the list above).
DRAW_FRESH_POOL, DRAW_FRESH = 5, 6


def fresh_pool(sdf: np.ndarray, n: int, factor: float, rng: np.random.Generator,
               where: str = "frame") -> tuple[np.ndarray, np.ndarray, bool]:
    """A per-frame pool for fresh per-epoch draws: (near indices, far indices, all_near_once).

    The pool holds up to ``factor`` times the near and far points that one draw
    of ``n`` needs, each part a uniform sample *without* replacement of the
    frame's near (SDF ≤ 0.3) or far points, in ascending index order. When the
    frame has fewer near points than ``int(0.7·n)`` the pool holds all of them
    and ``all_near_once`` is True: every draw then takes them all once, as the
    original's rule does. Raises :class:`UserError` like :func:`draw` when far
    points are needed but there are none.
    """
    flat = np.asarray(sdf).reshape(-1)
    near_mask = flat <= NEAR_THRESHOLD
    near = np.flatnonzero(near_mask)
    n_near = int(NEAR_SHARE * n)
    all_once = len(near) < n_near
    n_far = n - (len(near) if all_once else n_near)
    if not all_once:
        keep = min(len(near), max(n_near, int(np.ceil(factor * n_near))))
        if keep < len(near):
            near = np.sort(near[rng.choice(len(near), size=keep, replace=False)])
    far = np.flatnonzero(~near_mask)
    if n_far > 0 and len(far) == 0:
        raise UserError(f"{where}: no point with SDF > {NEAR_THRESHOLD} to draw the far samples from "
                        f"(is the SDF normalised, negative inside?)")
    keep = min(len(far), max(n_far, int(np.ceil(factor * n_far))))
    if keep < len(far):
        far = np.sort(far[rng.choice(len(far), size=keep, replace=False)])
    if n_far == 0:
        far = far[:0]
    return near, far, all_once


def draw_from_pool(n_near_pool: int, n_far_pool: int, all_near_once: bool, n: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Positions (int64, (n,)) into a pool laid out as [near part, far part]: near first, then far.

    The 70/30 rule of :func:`draw`, applied to the pool: ``int(0.7·n)`` near
    positions uniformly with replacement (or every near position once when
    ``all_near_once``), the rest uniformly with replacement from the far part.
    """
    if all_near_once:
        near = np.arange(n_near_pool)
    else:
        near = rng.integers(0, n_near_pool, size=int(NEAR_SHARE * n)) if int(NEAR_SHARE * n) else np.zeros(0, np.int64)
    n_far = n - len(near)
    far = n_near_pool + rng.integers(0, n_far_pool, size=n_far) if n_far > 0 else np.zeros(0, np.int64)
    return np.concatenate([near, far]).astype(np.int64)
