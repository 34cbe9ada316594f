"""Which grid points of a frame are trained on (SPEC §2).

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

from .errors import UserError

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
