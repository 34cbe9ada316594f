"""Per-cell vectors and the held-out scores of benchmarks/generation_quality.py
(autodecoder/evaluation/per_cell.py, autodecoder/evaluation/generation_quality.py).

About 10 s on one core.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from autodecoder.demo.populations import cell_masks, draw_population
from autodecoder.evaluation import generation_quality as gq
from autodecoder.evaluation.metrics import dice
from autodecoder.evaluation.per_cell import count_protrusions, describe_cell, frame_table, vector_names, vectors

G = 40
AXIS = np.arange(G) - (G - 1) / 2


def ball(radius: float, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    x, y, z = np.meshgrid(AXIS - centre[0], AXIS - centre[1], AXIS - centre[2], indexing="ij")
    return x * x + y * y + z * z <= radius * radius


def with_tubes(radius: float, count: int, tube: float = 1.2, length: float = 8.0) -> np.ndarray:
    """A ball with ``count`` straight tubes (radius ``tube`` voxels, rounded ends) along distinct directions."""
    m = ball(radius)
    x, y, z = np.meshgrid(AXIS, AXIS, AXIS, indexing="ij")
    p = np.stack([x, y, z], -1)
    dirs = [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)][:count]
    for d in dirs:
        d = np.asarray(d, float)
        s = p @ d
        off = np.linalg.norm(p - s[..., None] * d, axis=-1)
        end = radius + length
        m |= ((s > 0) & (s < end) & (off <= tube)) | (np.linalg.norm(p - end * d, axis=-1) <= tube)
    return m


def test_protrusions_count_thin_tubes_not_a_smooth_body():
    assert count_protrusions(ball(9)) == 0
    assert count_protrusions(np.zeros((G, G, G), bool)) == 0
    for k in (1, 3, 6):
        assert count_protrusions(with_tubes(9, k)) == k
    # tubes thicker than the opening's ball are part of the body
    assert count_protrusions(with_tubes(9, 3, tube=3.5)) == 0


def test_cell_vector_summaries_against_known_sequences():
    names = list(vector_names())
    # a ball whose radius grows 6 → 9 voxels over 4 frames: the volume ∝ r³ rises, sphericity stays ≈ 1
    radii = [6, 7, 8, 9]
    growing = np.stack([ball(r) for r in radii])
    v = dict(zip(names, describe_cell(growing)))
    vols = [ball(r).sum() for r in radii]
    assert v["volume_start"] == vols[0] and v["volume_end"] == vols[-1]
    assert v["volume_mean"] == pytest.approx(np.mean(vols))
    assert v["volume_slope"] == pytest.approx(np.polyfit(range(4), vols, 1)[0])
    assert v["relative_growth_rate"] == pytest.approx(v["volume_slope"] / vols[0])
    assert v["sphericity_mean"] == pytest.approx(0.99, abs=0.02) and abs(v["sphericity_slope"]) < 0.01
    assert v["axis_major_end"] == pytest.approx(18, rel=0.05)  # the full axis of a ball of radius 9
    assert v["division_frame"] == 4  # no division: one past the last frame
    # a cell that splits at frame 2, and protrusions that grow out
    split = np.stack([ball(7, (-2, 0, 0)) | ball(7, (2, 0, 0)), ball(6, (-4, 0, 0)) | ball(6, (4, 0, 0)),
                      ball(6, (-8, 0, 0)) | ball(6, (8, 0, 0)), ball(6, (-9, 0, 0)) | ball(6, (9, 0, 0))])
    assert dict(zip(names, describe_cell(split)))["division_frame"] == 2
    tubes = np.stack([with_tubes(8, k) for k in (0, 2, 4, 4)])
    t = dict(zip(names, describe_cell(tubes)))
    assert (t["protrusions_start"], t["protrusions_end"], t["protrusions_mean"]) == (0, 4, 2.5)
    assert t["protrusions_slope"] == pytest.approx(1.4)
    # an empty frame (a failed decode) gives zeros, never NaN
    gap = growing.copy()
    gap[1] = False
    assert np.isfinite(describe_cell(gap)).all() and frame_table(gap)["surface_area"][1] == 0


def test_pairwise_dice_equals_the_dice_of_each_pair():
    rng = np.random.default_rng(0)
    a = rng.random((3, 2, 8, 8, 8)) < 0.4
    b = rng.random((4, 2, 8, 8, 8)) < 0.3
    b[0] = False  # empty against non-empty: 0
    want = np.array([[np.mean([dice(x[t], y[t]) for t in range(2)]) for y in b] for x in a])
    assert np.allclose(gq.pairwise_dice(a, b), want)
    s = gq.pairwise_dice(a, a)
    assert np.allclose(np.diag(s), 1.0)
    assert gq.leave_one_out_copies(np.array([[1, 0.9, 0.2], [0.9, 1, 0.5], [0.2, 0.5, 1]]), 0.6) == pytest.approx(2 / 3)


def draws(seed: int, count: int, n: int = 24, shift: float = 0.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(99).standard_normal((5, 5))
    return [(rng.standard_normal((n, 5)) @ mix + shift) * [1, 10, 0.1, 100, 3] for _ in range(count)]


def test_scores_are_chance_for_one_distribution_and_separable_for_two():
    names = [f"x{i}" for i in range(5)]
    test = draws(1, 1)[0]
    same = gq.score_method(test, gq.Method("same", draws(2, 8)), names)
    # 8 draws of 24 against 24: the mean 1-NNA at chance; the standard error of one draw is about
    # √(0.25/48) ≈ 0.07 (more, as the decisions are not independent), of the mean about 0.03
    assert abs(same.nna[0] - 0.5) < 0.1 and 0 < same.nna[1] < 0.05
    assert same.differing == [] and np.all(same.ks_p > 0.01)
    # coverage: ≈ 1 − 1/e for equal sets, all covered by a draw twenty times the size
    assert 0.45 < same.coverage[0] < 0.8
    big = gq.score_method(test, gq.Method("big", draws(3, 2, n=480)), names)
    assert big.coverage[0] > 0.95
    far = gq.score_method(test, gq.Method("far", draws(4, 5, shift=3.0)), names)
    assert far.nna[0] > 0.97 and far.coverage[0] < 0.3 and far.differing == names
    assert far.matching[0] > 2 * same.matching[0] and far.mmd[0] > 10 * same.mmd[0]
    assert far.ks_d.min() > 0.5


def test_phantom_populations_through_the_per_cell_vectors():
    """Two draws of one population are hard to tell apart, two kinds of cell are not."""
    def population(kind, seed, n=16):
        return vectors([cell_masks(c, 32, 4) for c in draw_population(kind, n, seed)])
    deform_a, deform_b, filo = population("deform", 1), population("deform", 2), population("filo", 3)
    from autodecoder.evaluation.generative import one_nna
    assert one_nna(deform_a, filo) > 0.9
    assert one_nna(deform_a, deform_b) < 0.8


def test_choose_and_the_issues_bar(tmp_path):
    c = [gq.Candidate(0.5, 0.55, 0.4), gq.Candidate(1.0, 0.62, 0.05), gq.Candidate(1.5, 0.70, 0.0)]
    se = gq.nna_standard_error(24)
    assert se == pytest.approx(0.0722, abs=1e-4)
    assert gq.choose(c, 1.0, se).setting == 1.0  # 0.07 better: within one standard error, the default stays
    assert gq.choose(c, 1.0, 0.05).setting == 0.5  # clearly better
    assert gq.choose(c, 1.5, 0.05).setting == 0.5
    assert gq.choose([gq.Candidate(1.0, math.nan, math.nan)], 1.0, se).setting == 1.0
    names = [f"x{i}" for i in range(5)]
    test = draws(1, 1)[0]
    rec = gq.score_method(test, gq.Method("rec", draws(5, 5)), names)
    good = gq.score_method(test, gq.Method("good", draws(6, 5), best_dice=np.full(120, 0.5)), names, threshold=0.8)
    bad = gq.score_method(test, gq.Method("bad", draws(7, 5, shift=3.0), best_dice=np.full(120, 0.9)), names,
                          threshold=0.8)
    assert good.copies == 0.0 and bad.copies == 1.0
    stricter = gq.score_method(test, gq.Method("bad", draws(7, 5), best_dice=np.full(120, 0.9)), names, 0.8, 0.95)
    assert stricter.copies == 1.0 and stricter.strict_copies == 0.0
    assert "copies (q95)" in gq.markdown_table([stricter], names) and rec.strict_copies is None
    lines = gq.check_done([rec, good, bad], "good", "rec", ["bad"])
    assert all(line.startswith("PASS") for line in lines), lines
    lines = gq.check_done([rec, good, bad], "bad", "rec", ["good"])
    assert [line[:4] for line in lines] == ["FAIL"] * 4, lines
    md, table, ks = gq.write_tables([rec, good, bad], names, tmp_path / "t" / "table", "title")
    text = md.read_text()
    assert text.startswith("title") and "| bad |" in text and "100 %" in text
    with open(table) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == ["rec", "good", "bad"] and float(rows[2]["nna"]) == pytest.approx(bad.nna[0])
    with open(ks) as fh:
        assert len(list(csv.DictReader(fh))) == 3 * len(names)
    png = gq.plot_distributions(test, [gq.Method("good", draws(6, 2))], names, names[:3], tmp_path / "d.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
