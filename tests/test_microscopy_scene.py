"""Scene: placement (scattered, cluster), motion (keep_apart, drift, leaving, reflection), seeds, cell time."""

from __future__ import annotations

import numpy as np
import pytest

from autodecoder.experiment.errors import UserError
from autodecoder.microscopy.scene import Motion, SceneSettings, cell_time, place, simulate

FIELD = (30.0, 80.0, 100.0)  # (z, y, x) µm


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed]))


def pair_slack(centres: np.ndarray, radii: np.ndarray, gap: float) -> np.ndarray:
    """distance - (r_i + r_j + gap) for every pair i != j (inf on the diagonal)."""
    d = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    slack = d - (radii[:, None] + radii[None] + gap)
    np.fill_diagonal(slack, np.inf)
    return slack


def test_scattered_keeps_gaps_and_margin() -> None:
    radii = np.random.default_rng(1).uniform(3.0, 7.0, size=20)
    s = SceneSettings(layout="scattered", min_gap_um=2.0, margin_um=1.5)
    c = place(radii, FIELD, s, rng(0))
    assert c.shape == (20, 3)
    assert pair_slack(c, radii, 2.0).min() >= -1e-9
    assert np.all(c - radii[:, None] >= 1.5 - 1e-12)
    assert np.all(c + radii[:, None] <= np.array(FIELD) - 1.5 + 1e-12)


def test_impossible_request_one_line_error() -> None:
    s = SceneSettings(layout="scattered", min_gap_um=1.0, max_tries=200)
    with pytest.raises(UserError) as err:
        place([10.0] * 50, (40.0, 40.0, 40.0), s, rng(0))
    msg = str(err.value)
    assert "\n" not in msg
    assert "of 50 cells" in msg and "fewer" in msg and "larger field" in msg and "smaller gap" in msg
    with pytest.raises(UserError, match="of 8 cells"):
        place([10.0] * 8, (40.0, 40.0, 40.0), SceneSettings(layout="cluster", min_gap_um=0.0), rng(0))


@pytest.mark.parametrize("gap", [0.5, -2.0])
def test_cluster_cells_touch_and_do_not_overlap(gap: float) -> None:
    radii = np.random.default_rng(2).uniform(4.0, 6.0, size=12)
    c = place(radii, (60.0, 80.0, 80.0), SceneSettings(layout="cluster", min_gap_um=gap, max_tries=300), rng(3))
    np.testing.assert_allclose(c[0], (30.0, 40.0, 40.0))
    slack = pair_slack(c, radii, gap)
    assert slack.min() >= -1e-9
    assert np.all(np.abs(slack).min(axis=1) <= 1e-9)  # every cell touches at least one other
    # packed: the cluster is far more compact than the field
    assert np.linalg.norm(c - c.mean(axis=0), axis=1).max() < 5 * radii.max()


def test_keep_apart_never_too_close() -> None:
    radii = np.full(15, 4.0)
    s = SceneSettings(layout="cluster", min_gap_um=0.5, step_um=1.5, keep_apart=True,
                      drift_um_per_frame=(0.0, 0.3, -0.2))
    field = (40.0, 60.0, 60.0)
    c0 = place(radii, field, s, rng(4))
    m = simulate(c0, radii, 40, field, s, rng(5))
    assert m.present.all()
    moved = np.linalg.norm(m.centres[-1] - m.centres[0], axis=1)
    assert moved.max() > 1.0  # cells did move
    for t in range(40):
        assert pair_slack(m.centres[t], radii, 0.5).min() >= -1e-9, t
    free = simulate(c0, radii, 40, field, SceneSettings(**{**s.__dict__, "keep_apart": False}), rng(5))
    assert min(pair_slack(free.centres[t], radii, 0.5).min() for t in range(40)) < -1e-3


def test_drift_moves_mean_position() -> None:
    n, T, step = 200, 30, 0.5
    drift = np.array([0.1, -0.3, 0.5])
    s = SceneSettings(step_um=step, drift_um_per_frame=tuple(drift), keep_apart=False, may_leave=True)
    c0 = np.full((n, 3), 500.0)
    m = simulate(c0, np.ones(n), T, (1000.0, 1000.0, 1000.0), s, rng(6))
    shift = (m.centres[-1] - m.centres[0]).mean(axis=0)
    stderr = step * np.sqrt((T - 1) / n)  # frame 0 is the start: T - 1 steps
    assert np.all(np.abs(shift - (T - 1) * drift) < 4 * stderr)


def test_may_leave_cell_is_gone_for_good() -> None:
    s = SceneSettings(step_um=0.2, drift_um_per_frame=(0.0, 0.0, 3.0), may_leave=True, keep_apart=False)
    m = simulate(np.array([[15.0, 40.0, 80.0], [15.0, 40.0, 20.0]]), [5.0, 5.0], 30, FIELD, s, rng(7))
    for i in range(2):
        assert not m.present[-1, i]
        first_gone = np.argmin(m.present[:, i])
        assert first_gone > 0 and not m.present[first_gone:, i].any()
        assert m.centres[first_gone, i, 2] - 5.0 > FIELD[2]  # really outside
        assert m.centres[first_gone - 1, i, 2] - 5.0 <= FIELD[2]
    assert np.argmin(m.present[:, 0]) < np.argmin(m.present[:, 1])


def test_reflection_keeps_spheres_inside() -> None:
    radii = np.array([3.0, 5.0, 4.0, 6.0])
    s = SceneSettings(step_um=3.0, drift_um_per_frame=(1.0, -2.0, 2.5), may_leave=False, margin_um=1.0)
    c0 = place(radii, FIELD, s, rng(8))
    m = simulate(c0, radii, 60, FIELD, s, rng(9))
    assert m.present.all()
    r = radii[None, :, None]
    assert np.all(m.centres - r >= 1.0 - 1e-9)
    assert np.all(m.centres + r <= np.array(FIELD) - 1.0 + 1e-9)
    # the drift pushes them against the faces
    assert np.any(np.isclose(m.centres[-20:, :, 2] + radii, FIELD[2] - 1.0, atol=3.0))


def scene(seed: int, n: int = 8) -> tuple[np.ndarray, Motion]:
    radii = np.linspace(3.0, 6.0, n)
    s = SceneSettings(step_um=1.0, drift_um_per_frame=(0.0, 0.2, 0.1), offset_frames=10)
    r = rng(seed)
    c0 = place(radii, FIELD, s, r)
    return c0, simulate(c0, radii, 12, FIELD, s, r)


def test_seeds_reproducible_and_distinct() -> None:
    c_a, m_a = scene(11)
    c_b, m_b = scene(11)
    assert np.array_equal(c_a, c_b)
    assert np.array_equal(m_a.centres, m_b.centres) and np.array_equal(m_a.present, m_b.present)
    assert np.array_equal(m_a.offsets, m_b.offsets)
    assert m_a.centres.dtype == np.float64 and m_a.present.dtype == bool and m_a.centres.shape == (12, 8, 3)
    c_c, m_c = scene(12)
    assert not np.array_equal(c_a, c_c) and not np.array_equal(m_a.centres, m_c.centres)
    assert not np.array_equal(m_a.offsets, m_c.offsets)
    assert m_a.offsets.min() >= 0 and m_a.offsets.max() <= 10
    # adding a cell leaves the earlier cells' placement unchanged
    c_more = place(np.linspace(3.0, 6.0, 8).tolist() + [3.0], FIELD, SceneSettings(), rng(11))
    assert np.array_equal(c_more[:8], c_a)


def test_cell_time() -> None:
    assert cell_time(0, 0, 10) == -1.0
    assert cell_time(9, 0, 10) == 1.0
    assert cell_time(4, 5, 10) == 1.0
    assert cell_time(20, 0, 10) == 1.0  # clipped
    assert cell_time(-3, 0, 10) == -1.0
    assert cell_time(2, 1, 7) == pytest.approx(0.0)
    assert cell_time(5, 3, 1) == 0.0
    with pytest.raises(UserError, match="life_frames"):
        cell_time(0, 0, 0)


def test_bad_settings() -> None:
    with pytest.raises(UserError, match="layout"):
        SceneSettings(layout="grid")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="drift_um_per_frame"):
        SceneSettings(drift_um_per_frame=(1.0, 2.0))  # type: ignore[arg-type]
    with pytest.raises(UserError, match="min_gap_um"):
        place([2.0, 2.0], FIELD, SceneSettings(layout="cluster", min_gap_um=-4.0), rng(0))
