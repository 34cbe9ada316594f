"""Measures of generated cells against real ones (autodecoder/evaluation/generative.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autodecoder.evaluation import generative as gm
from autodecoder.experiment.errors import UserError

N, D = 200, 6


def cells(seed: int, shift: float = 0.0) -> np.ndarray:
    """``N`` cells × ``D`` correlated descriptors in mixed units (the metrics standardise them)."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).standard_normal((D, D))
    units = np.array([1.0, 10.0, 0.01, 100.0, 1.0, 3.0])
    return (rng.standard_normal((N, D)) @ mix + shift) * units


def test_two_draws_of_one_distribution_are_indistinguishable():
    a, b = cells(1), cells(2)
    # binomial standard error of an accuracy over 2N decisions; 4 of them (the 1-NN decisions are
    # not independent, so the bound is kept generous)
    se = math.sqrt(0.25 / (2 * N))
    acc = gm.one_nna(a, b)
    assert abs(acc - 0.5) < 4 * se, (acc, se)
    assert gm.coverage(a, b) > 0.5  # ≈ 1 − 1/e for large equal sets
    assert gm.mmd(a, a) == 0.0 and gm.mmd(a, b) < 0.02
    _, p = gm.energy_test(a, b, 200, np.random.default_rng(0))
    assert p > 0.01


def test_two_different_distributions_are_told_apart():
    a, far, near = cells(1), cells(3, shift=4.0), cells(2)
    assert gm.one_nna(a, far) > 0.97
    assert gm.coverage(a, far) < 0.25 < gm.coverage(a, near)
    assert gm.minimum_matching_distance(a, far) > 1.5 * gm.minimum_matching_distance(a, near)
    assert gm.mmd(a, far) > 10 * gm.mmd(a, near)
    _, p = gm.energy_test(a, far, 200, np.random.default_rng(0))
    assert p < 0.01


def test_small_worked_examples():
    ref = np.array([[0.0], [1.0], [10.0], [11.0]])
    gen = np.array([[0.2], [0.1], [10.4], [30.0]])
    # pooled mean/std are one affine map: nearest neighbours as on the raw line
    assert gm.coverage(ref, gen) == pytest.approx(3 / 4)  # 0.2, 0.1 → 0; 10.4 → 10; 30 → 11: 1 is never chosen
    assert gm.coverage(ref[:3], gen[:3]) == pytest.approx(2 / 3)
    std = np.vstack([ref, gen]).std()
    assert gm.minimum_matching_distance(ref, gen) == pytest.approx(np.mean([0.1, 0.8, 0.4, 0.6]) / std)
    # 1-NNA: two well-separated clusters, each holding one cell of each set → every neighbour is the other set
    assert gm.one_nna(np.array([[0.0], [10.0]]), np.array([[0.1], [10.1]])) == 0.0
    assert gm.one_nna(np.array([[0.0], [0.1]]), np.array([[10.0], [10.1]])) == 1.0
    with pytest.raises(UserError, match="generated: 2 descriptors, expected 1"):
        gm.one_nna(ref, np.zeros((3, 2)))


def test_holm_matches_a_hand_computed_example():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): × 4, 3, 2, 1 → 0.02, 0.03, 0.06, 0.04;
    # running maximum 0.02, 0.03, 0.06, 0.06
    assert np.allclose(gm.holm(p)[:4], [0.03, 0.06, 0.06, 0.02]) and np.isnan(gm.holm(p)[4])
    assert np.allclose(gm.holm([0.5, 0.6]), [1.0, 1.0])


def test_copies_and_summaries():
    real = np.array([[1.0, 0.8, 0.6], [0.8, 1.0, 0.7], [0.6, 0.7, 1.0]])
    threshold = gm.calibrate_copy_threshold(real)
    assert threshold == pytest.approx((0.8 + 0.8 + 0.7) / 3)
    res = gm.novelty(np.array([[0.9, 0.1, 0.2], [0.5, 0.6, 0.7], [0.3, 0.75, 0.0], [0.2, 0.1, 0.95]]), threshold)
    assert res.copies == pytest.approx(0.5) and res.novel == pytest.approx(0.5)
    assert np.allclose(res.best, [0.9, 0.7, 0.75, 0.95])
    mean, se = gm.summarise_over_draws([0.5, 0.6, 0.7])
    assert mean == pytest.approx(0.6) and se == pytest.approx(0.1 / math.sqrt(3))
    assert math.isnan(gm.summarise_over_draws([0.5])[1])
    with pytest.raises(UserError, match="square matrix"):
        gm.calibrate_copy_threshold(np.ones((1, 1)))


def test_a_quantile_threshold_flags_that_share_of_real_cells():
    # 40 real cells: the mean flags about half of them, the 0.95 quantile 2 of 40
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 0.9, (40, 40))
    real = np.triu(a, 1) + np.triu(a, 1).T + np.eye(40)
    nearest = np.where(np.eye(40, dtype=bool), -1, real).max(axis=1)
    q95 = gm.calibrate_copy_threshold(real, 0.95)
    assert q95 == pytest.approx(np.quantile(nearest, 0.95))
    assert np.mean(nearest > q95) == pytest.approx(0.05)
    assert 0.3 < np.mean(nearest > gm.calibrate_copy_threshold(real)) < 0.7
    assert gm.calibrate_copy_threshold(real, 1.0) == pytest.approx(nearest.max())  # the closest pair itself
    with pytest.raises(UserError, match="quantile"):
        gm.calibrate_copy_threshold(real, 95)
