"""Phantom populations with drawn parameters (autodecoder/demo/populations.py) and the phantoms' overrides.

About 6 s on one core.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from autodecoder.demo import phantoms
from autodecoder.demo.populations import DISTRIBUTIONS, cell_masks, draw_population
from autodecoder.evaluation.descriptors import count_components
from autodecoder.evaluation.per_cell import count_protrusions

# sha256 (first 32 hex digits) of phantom_sequence(kind, grid, frames, seed).tobytes(), computed before the
# overrides were added: the demo data and every existing seed must stay byte for byte what they were
BEFORE = [("divide", 64, 12, 0, "46faeffdad33fcf2d4cb97e746ffdc72"),
          ("filo", 64, 12, 1, "c4e485d722576f44081ccea24bb46348"),
          ("deform", 64, 12, 2, "57263abc7aecedd21707a10343ee3a0a"),
          ("divide", 48, 10, 3, "739e8942c1ee0a7499648832314e1a9d"),
          ("filo", 48, 10, 4, "ef97c15970ed0a31cf4880524ab0d7bc"),
          ("deform", 32, 5, 5, "55a019a50be25a795439cf65597261a4"),
          ("filo", 24, 3, 11, "c25e31cc07e4573728629181dc39fb12"),
          ("divide", 40, 7, 17, "94cdf08064ac895dade427a5598b0a58")]


@pytest.mark.parametrize("kind, grid, frames, seed, digest", BEFORE)
def test_existing_seeds_are_unchanged(kind, grid, frames, seed, digest):
    m = phantoms.phantom_sequence(kind, grid, frames, seed)
    assert hashlib.sha256(m.tobytes()).hexdigest()[:32] == digest
    assert np.array_equal(phantoms.phantom_sequence(kind, grid, frames, seed, overrides={}), m)


def test_overrides_do_what_they_say():
    grid, frames = 48, 6
    vol = {r: phantoms.phantom_sequence("deform", grid, frames, 3, {"radius": r, "amplitude": 0.0})[0].sum()
           for r in (0.25, 0.35)}
    # a ball without deformation (breathing ±3 %): the volume goes with the radius cubed, within voxelisation
    assert vol[0.35] / vol[0.25] == pytest.approx((0.35 / 0.25) ** 3, rel=0.08)
    grow = phantoms.phantom_sequence("deform", grid, frames, 3, {"amplitude": 0.0, "growth": 0.2})
    still = phantoms.phantom_sequence("deform", grid, frames, 3, {"amplitude": 0.0})
    assert grow[-1].sum() / still[-1].sum() == pytest.approx(1.2 ** 3, rel=0.08)
    assert grow[0].sum() == still[0].sum()
    # a dividing cell that divides late or not at all within the sequence
    never = phantoms.phantom_sequence("divide", grid, frames, 4, {"abscission": 1.2, "elongate_start": 0.6})
    early = phantoms.phantom_sequence("divide", grid, frames, 4, {"abscission": 0.4, "elongate_start": 0.1})
    assert [count_components(f) for f in never] == [1] * frames
    assert [count_components(f) for f in early] == [1, 1, 2, 2, 2, 2]
    # filopodia: as many thin protrusions as asked for, once grown (they start before u = 0.35 and grow
    # within 0.55, unless two cross)
    for count in (2, 6):
        m = phantoms.phantom_sequence("filo", grid, frames, 5, {"count": count})
        assert count_protrusions(m[-1]) == count
    with pytest.raises(ValueError, match="unknown for kind 'filo'"):
        phantoms.phantom_sequence("filo", grid, frames, 5, {"abscission": 0.5})
    with pytest.raises(ValueError, match="elongate_start < abscission"):
        phantoms.phantom_sequence("divide", grid, frames, 5, {"abscission": 0.3, "elongate_start": 0.5})


def test_populations_are_reproducible_and_follow_their_distributions():
    a, b = draw_population("divide", 200, 1), draw_population("divide", 200, 1)
    assert a == b and draw_population("divide", 200, 2) != a
    assert draw_population("divide", 5, 1) == a[:5]  # a larger population starts with the smaller one
    r = np.array([c.overrides["radius"] for c in a])
    ab = np.array([c.overrides["abscission"] for c in a])
    # U(0.29, 0.38): the mean of 200 draws within 4 standard errors of 0.335
    assert abs(r.mean() - 0.335) < 4 * 0.09 / np.sqrt(12 * 200) and r.min() >= 0.29 and r.max() <= 0.38
    # about a third (0.3 / 0.9) of the cells do not divide within the sequence: binomial, 4 standard errors
    share = np.mean(ab > 1)
    assert abs(share - 1 / 3) < 4 * np.sqrt(2 / 9 / 200)
    assert all(0 <= c.overrides["elongate_start"] < c.overrides["abscission"] for c in a)
    filo = draw_population("filo", 300, 3)
    counts = np.bincount([c.overrides["count"] for c in filo], minlength=9)
    assert counts[:2].sum() == 0 and counts[2:].min() > 20  # every count 2 … 8 drawn
    assert set(DISTRIBUTIONS) == set(phantoms.KINDS)
    for kind in phantoms.KINDS:
        assert set(DISTRIBUTIONS[kind]) == set(phantoms.OVERRIDES[kind])


@pytest.mark.parametrize("kind", phantoms.KINDS)
def test_population_cells_vary_and_stay_inside(kind):
    cells = draw_population(kind, 6, 11)
    seqs = [cell_masks(c, 40, 4) for c in cells]
    vols = np.array([s[0].sum() for s in seqs])
    assert vols.max() / vols.min() > 1.3  # sizes vary
    for s in seqs:
        assert s.shape == (4, 40, 40, 40) and all(f.any() for f in s)
        assert not (s[:, :3].any() or s[:, -3:].any() or s[:, :, :3].any() or s[:, :, -3:].any()
                    or s[..., :3].any() or s[..., -3:].any())
