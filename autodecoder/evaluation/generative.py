"""Measures of generated cells against real ones, as generative-shape research uses them.

Inputs are per-cell descriptor vectors: rows are cells, columns descriptors. The distance-based
measures first standardise every column by the mean and standard deviation of the **pooled**
reference and generated cells (:func:`standardise`), so that no descriptor weighs by its unit,
and both sets are measured with one ruler (a column constant over the pool is left at 0).
Distances are Euclidean in those standardised units.

* :func:`one_nna`: leave-one-out 1-nearest-neighbour accuracy of telling the sets apart
  (0.5 indistinguishable, 1 separable).
* :func:`coverage`: the share of reference cells that are the nearest reference cell of some
  generated cell (two draws of one distribution give ≈ 1 − 1/e ≈ 0.63 for large equal sets, a
  generator that misses modes less).
* :func:`minimum_matching_distance`: mean over reference cells of the distance to the nearest
  generated cell.
* :func:`mmd`: squared maximum mean discrepancy with a Gaussian kernel; :func:`energy_test`, a
  permutation two-sample test on the energy distance.
* :func:`calibrate_copy_threshold` and :func:`novelty`: copies of training cells, by Dice of shapes.
* :func:`holm`: Holm's step-down adjustment of p-values; :func:`summarise_over_draws`: mean and
  standard error over repeated draws.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.spatial.distance import cdist

from autodecoder.experiment.errors import UserError


def _table(x: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or len(a) == 0 or not np.isfinite(a).all():
        raise UserError(f"{what}: expected a finite (cells, descriptors) table, got shape {np.shape(x)}")
    return a


def standardise(reference: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both tables (n, D) and (m, D) in units of the pooled per-column mean and std (ddof 0)."""
    ref, gen = _table(reference, "reference"), _table(generated, "generated")
    if ref.shape[1] != gen.shape[1]:
        raise UserError(f"generated: {gen.shape[1]} descriptors, expected {ref.shape[1]} as the reference")
    pool = np.vstack([ref, gen])
    mean, std = pool.mean(0), pool.std(0)
    std[std == 0] = 1.0  # a constant column tells nothing apart; it stays at 0
    return (ref - mean) / std, (gen - mean) / std


def one_nna(reference: np.ndarray, generated: np.ndarray) -> float:
    """Leave-one-out 1-NN accuracy of the two sets: each cell's nearest other cell (of either set,
    standardised Euclidean distance, ties to the lower index) is correct when it is of the same set.

    0.5 means indistinguishable, 1 fully separable, for **equal** set sizes. With unequal sizes the
    accuracy is still computed, but its chance level moves away from 0.5 (cells of the larger set
    find neighbours of their own set more often), so it is no longer comparable to 0.5.
    """
    ref, gen = standardise(reference, generated)
    z = np.vstack([ref, gen])
    if len(z) < 3:
        raise UserError(f"1-NNA: {len(ref)} reference and {len(gen)} generated cells; expected at least 3 in all")
    labels = np.r_[np.zeros(len(ref), bool), np.ones(len(gen), bool)]
    d = cdist(z, z)
    np.fill_diagonal(d, np.inf)  # leave one out
    return float(np.mean(labels[np.argmin(d, axis=1)] == labels))


def coverage(reference: np.ndarray, generated: np.ndarray) -> float:
    """For each generated cell its nearest reference cell; the share of reference cells chosen at least once."""
    ref, gen = standardise(reference, generated)
    chosen = np.argmin(cdist(gen, ref), axis=1)
    return float(len(np.unique(chosen)) / len(ref))


def minimum_matching_distance(reference: np.ndarray, generated: np.ndarray) -> float:
    """Mean over reference cells of the standardised distance to the nearest generated cell."""
    ref, gen = standardise(reference, generated)
    return float(cdist(ref, gen).min(axis=1).mean())


def mmd(reference: np.ndarray, generated: np.ndarray, bandwidth: float | None = None) -> float:
    """Squared MMD (biased V-statistic, ≥ 0; exactly 0 for identical sets), Gaussian kernel
    ``exp(−d²/(2σ²))`` on standardised descriptors; ``σ`` defaults to the median pooled distance."""
    ref, gen = standardise(reference, generated)
    if bandwidth is None:
        pool = cdist(np.vstack([ref, gen]), np.vstack([ref, gen]))
        positive = pool[pool > 0]
        bandwidth = float(np.median(positive)) if positive.size else 1.0
    if not bandwidth > 0:
        raise UserError(f"MMD bandwidth {bandwidth}: expected a number > 0")

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-cdist(a, b, "sqeuclidean") / (2 * bandwidth ** 2)).mean())
    return max(k(ref, ref) + k(gen, gen) - 2 * k(ref, gen), 0.0)


def _energy(d: np.ndarray, first: np.ndarray) -> float:
    """Energy distance 2E|X−Y| − E|X−X'| − E|Y−Y'| from the pooled distance matrix and a mask of set X."""
    return float(2 * d[first][:, ~first].mean() - d[first][:, first].mean() - d[~first][:, ~first].mean())


def energy_test(a: np.ndarray, b: np.ndarray, permutations: int = 500,
                rng: np.random.Generator | None = None) -> tuple[float, float]:
    """Permutation two-sample test of equal distributions on the energy distance of (n, D) and (m, D)
    raw (not standardised) vectors → (statistic, p-value with the +1 correction, in (0, 1])."""
    x, y = _table(a, "first sample"), _table(b, "second sample")
    rng = rng if rng is not None else np.random.default_rng()
    d = cdist(np.vstack([x, y]), np.vstack([x, y]))
    first = np.r_[np.ones(len(x), bool), np.zeros(len(y), bool)]
    stat = _energy(d, first)
    null = [_energy(d, rng.permutation(first)) for _ in range(permutations)]
    return stat, (1 + sum(s >= stat for s in null)) / (permutations + 1)


def calibrate_copy_threshold(real_pairwise_dice: np.ndarray, quantile: float | None = None) -> float:
    """From the symmetric (n, n) Dice matrix of distinct real cells (its diagonal ignored), each real cell's
    Dice with its most similar *other* real cell, summarised: their mean (``quantile`` None: about half of
    the real cells lie above it), or their ``quantile`` (e.g. 0.95: a share ``1 − quantile`` of the real
    cells lie above it, so a generator of new real-like cells makes about that share of copies)."""
    s = np.asarray(real_pairwise_dice, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or len(s) < 2:
        raise UserError(f"real-against-real Dice: expected a square matrix of at least 2 cells, got shape {s.shape}")
    if quantile is not None and not 0.0 <= quantile <= 1.0:
        raise UserError(f"copy threshold quantile {quantile}: expected a number in [0, 1]")
    off = s.copy()
    np.fill_diagonal(off, -np.inf)
    nearest = off.max(axis=1)
    return float(nearest.mean() if quantile is None else np.quantile(nearest, quantile))


class Novelty(NamedTuple):
    """Copies among generated cells: ``copies`` the share whose best Dice exceeds the threshold,
    ``novel = 1 − copies``, ``best`` each generated cell's best Dice with a training cell (m,)."""

    copies: float
    novel: float
    best: np.ndarray


def novelty(generated_to_train_similarity: np.ndarray, threshold: float) -> Novelty:
    """From the (m generated, n training) Dice matrix: a generated cell is a copy when its best Dice
    with a training cell is above ``threshold`` (:func:`calibrate_copy_threshold`), i.e. it is closer
    to a training cell than real cells are on average to their nearest distinct neighbour."""
    s = np.asarray(generated_to_train_similarity, dtype=np.float64)
    if s.ndim != 2 or 0 in s.shape:
        raise UserError(f"generated-against-training Dice: expected an (m, n) matrix, got shape {s.shape}")
    best = s.max(axis=1)
    copies = float(np.mean(best > threshold))
    return Novelty(copies, 1.0 - copies, best)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order: sorted ascending, ``p_(i)`` becomes
    ``max_{j ≤ i} min(1, (m − j + 1)·p_(j))``. NaNs stay NaN and do not count in ``m``."""
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled) if m else scaled
    return out


def summarise_over_draws(values: np.ndarray) -> tuple[float, float]:
    """(mean, standard error = sample std (ddof 1) / √n) of a measure over repeated draws; the
    standard error is NaN for a single draw."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(v) == 0:
        raise UserError("summarise_over_draws: no values")
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return float(v.mean()), se
