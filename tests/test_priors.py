"""Priors of ``test.py -t sample --prior`` and uniform orientations (autodecoder/decoding/priors/)."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import roma
import torch
from scipy import stats
from scipy.optimize import linear_sum_assignment

from autodecoder.cli.test import main as cli_main
from autodecoder.decoding import latent, priors
from autodecoder.decoding.options import LatentOptions, check_options
from autodecoder.decoding.run import run
from autodecoder.decoding.types import plan, sample_jobs
from autodecoder.evaluation.generative import energy_test
from autodecoder.experiment import workspace as ws
from autodecoder.experiment.errors import UserError
from autodecoder.io.sequences import read_provenance
from conftest import REFERENCE

DIM = 20
TRUE_MEANS = np.random.default_rng(100).normal(0.0, 2.0, (3, DIM))
TRUE_WEIGHTS = np.array([0.5, 0.3, 0.2])
TRUE_SCALES = np.array([1.0, 0.6, 1.4])  # isotropic std of each component


def truth(n: int, seed: int) -> np.ndarray:
    """``n`` codes (n, 20) of a known 3-component Gaussian mixture."""
    rng = np.random.default_rng(seed)
    k = rng.choice(3, size=n, p=TRUE_WEIGHTS)
    return TRUE_MEANS[k] + TRUE_SCALES[k, None] * rng.standard_normal((n, DIM))


@pytest.fixture(scope="module")
def mixture():
    train, validation = truth(300, 1), truth(300, 2)
    return train, validation, priors.fit_prior("gmm", train, validation=validation)


@pytest.mark.parametrize("name", list(priors.PRIORS))
def test_draws_reproduce_with_a_seed_and_after_saving(name, tmp_path):
    codes = truth(40, 3)
    a, b = priors.fit_prior(name, codes), priors.fit_prior(name, codes)
    x = a.draw(7, 1.0, np.random.default_rng(5))
    assert x.dtype == np.float32 and x.shape == (7, DIM)
    assert np.array_equal(x, b.draw(7, 1.0, np.random.default_rng(5)))
    assert not np.array_equal(x, a.draw(7, 1.0, np.random.default_rng(6)))
    back = priors.Prior.load(a.save(tmp_path / f"{name}.npz"))
    assert type(back) is type(a) and back.name == name and back.describe() == a.describe()
    assert np.array_equal(back.draw(7, 1.0, np.random.default_rng(5)), x)
    assert np.allclose(back.log_density(codes), a.log_density(codes))
    assert "\n" not in a.describe()


def test_gmm_recovers_a_known_mixture(mixture):
    train, validation, gmm = mixture
    assert len(gmm.weights) == 3 and gmm.means.shape[1] == DIM
    means = gmm.space.lift(gmm.means).astype(np.float64)
    cost = np.linalg.norm(means[:, None] - TRUE_MEANS[None], axis=-1)
    row, col = linear_sum_assignment(cost)
    # the error of a component's mean has norm ≈ σ_k·√(d / N_k) (0.37, 0.28, 0.81 here): at most 1.5 times that
    expected = TRUE_SCALES[col] * np.sqrt(DIM / (TRUE_WEIGHTS[col] * len(train)))
    assert np.all(cost[row, col] < 1.5 * expected), (cost[row, col], expected)
    assert np.abs(gmm.weights[row] - TRUE_WEIGHTS[col]).max() < 0.08
    # its draws against fresh draws of the truth: an energy permutation test that the Gaussian fails
    fresh = truth(300, 4)
    _, p = energy_test(gmm.draw(300, 1.0, np.random.default_rng(0)), fresh, 300, np.random.default_rng(1))
    gauss = priors.fit_prior("gaussian", train)
    _, p_gauss = energy_test(gauss.draw(300, 1.0, np.random.default_rng(0)), fresh, 300, np.random.default_rng(1))
    assert p > 0.01 and p_gauss < 0.01, (p, p_gauss)
    # and a KS test of one random 1-D projection
    u = np.random.default_rng(7).standard_normal(DIM)
    assert stats.ks_2samp(gmm.draw(300, 1.0, np.random.default_rng(2)) @ u, fresh @ u).pvalue > 0.01
    held = truth(300, 5)
    assert gmm.log_density(held).mean() > gauss.log_density(held).mean() + 1.0  # nats per code


def test_gmm_without_validation_uses_bic_and_temperature_zero_gives_the_means():
    codes = TRUE_MEANS[:, :3][np.repeat(np.arange(3), 60)] * 3 + np.random.default_rng(0).standard_normal((180, 3))
    gmm = priors.fit_prior("gmm", codes)
    assert "by BIC" in gmm.describe() and len(gmm.weights) == 3
    x = gmm.draw(50, 0.0, np.random.default_rng(0)).astype(np.float64)
    assert np.abs(x[:, None] - gmm.space.lift(gmm.means)[None]).max(-1).min(1).max() < 1e-5
    few = priors.fit_prior("gmm", truth(6, 8)[:, :12] @ np.ones((12, 192)) * 0.01 + np.eye(6, 192))
    assert few.means.shape[1] == 5  # 6 codes of length 192 span 5 directions
    assert priors.fit_prior("gmm", truth(40, 9), pca=4).means.shape[1] == 4
    with pytest.raises(UserError, match="--pca 21: expected 1 … 20"):
        priors.fit_prior("gmm", truth(40, 9), pca=21)


def test_kde_bandwidth_shrinks_with_more_codes_and_temperature_zero_copies():
    rng = np.random.default_rng(0)
    big = rng.standard_normal((1200, 5)) @ rng.standard_normal((5, 5))
    h = [priors.fit_prior("kde", big[:n]).bandwidth for n in (30, 300, 1200)]
    assert h[0] > h[1] > h[2], h
    hv = [priors.fit_prior("kde", big[:n], validation=big[-200:]).bandwidth for n in (30, 600)]
    assert hv[0] > hv[1], hv
    kde = priors.fit_prior("kde", big[:30])
    x = kde.draw(20, 0.0, np.random.default_rng(1)).astype(np.float64)
    assert np.abs(x[:, None] - big[None, :30]).max(-1).min(1).max() < 1e-4  # copies of learned codes
    with pytest.raises(UserError, match="--around: only used by --prior gaussian"):
        kde.draw(2, 1.0, np.random.default_rng(0), center=big[0])


def _rotations_pass_uniformity(euler: np.ndarray) -> tuple[float, float]:
    """KS p-values: the rotation angle against density (1 − cos θ)/π, and the cosine of the rotated
    z axis's polar angle against U(−1, 1)."""
    r = roma.euler_to_rotmat("XYZ", torch.as_tensor(euler, dtype=torch.float64)).numpy()  # the decoder's law
    theta = np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1))
    p_angle = stats.kstest(theta, lambda t: (t - np.sin(t)) / math.pi).pvalue
    p_axis = stats.kstest(r[:, 2, 2], stats.uniform(-1, 2).cdf).pvalue
    return p_angle, p_axis


def test_uniform_rotations_are_uniform_on_so3():
    euler = latent.uniform_rotations(20000, np.random.default_rng(0))
    assert euler.dtype == np.float32 and euler.shape == (20000, 3)
    p_angle, p_axis = _rotations_pass_uniformity(euler)
    assert p_angle > 0.01 and p_axis > 0.01, (p_angle, p_axis)
    # the same tests refuse uniform Euler angles, the law of generate
    old = np.random.default_rng(0).uniform(-math.pi, math.pi, (20000, 3))
    assert max(_rotations_pass_uniformity(old)) < 1e-6
    assert np.array_equal(euler, latent.uniform_rotations(20000, np.random.default_rng(0)))


def test_sample_jobs_record_the_prior_and_the_orientation_law():
    codes, angles = truth(24, 10).astype(np.float32), np.zeros((24, 3), np.float32)
    jobs = plan("sample", codes, angles, 4, seed=3, options=LatentOptions(prior="gmm", num=5))
    again = plan("sample", codes, angles, 4, seed=3, options=LatentOptions(prior="gmm", num=5))
    assert len(jobs) == 5 and all(np.array_equal(a.code, b.code) and np.array_equal(a.angles, b.angles)
                                  for a, b in zip(jobs, again))
    assert jobs[0].attrs["prior"] == "gmm" and "uniform on SO(3)" in jobs[0].attrs["orientation"]
    g = sample_jobs(priors.fit_prior("gaussian", codes[:12]), 2, 1.0, 0)
    assert g[0].attrs["prior"] == "gaussian" and g[0].attrs["latent_method"] == "ledoit-wolf"
    assert ws.latent_prior_file(REFERENCE, 10, "gmm", 3).name == "e0010_latent_gmm_pca3.npz"
    assert ws.latent_prior_file(REFERENCE, "latest", "kde").name == "latest_latent_kde.npz"
    assert ws.latent_prior_file(REFERENCE, 10, "gaussian").name == "e0010_latent_gaussian.npz"


@pytest.mark.parametrize("options, message", [
    (LatentOptions(prior="kde", around="0"), "--around 0: only used by --prior gaussian, not by --prior kde"),
    (LatentOptions(prior="gmm", around="x.mat"), "--around x.mat: only used by --prior gaussian"),
    (LatentOptions(prior="flow"), "--prior flow: expected one of gaussian, gmm, kde"),
])
def test_prior_options_are_checked(options, message):
    with pytest.raises(UserError) as e:
        check_options("sample", options)
    assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="--prior: only used by -t sample, not by -t generate"):
        check_options("generate", LatentOptions(prior="gmm"))


def test_prior_kde_around_is_a_one_line_error_cli(capsys, tmp_path):
    assert cli_main(["-x", str(REFERENCE), "-e", "10", "-t", "sample", "--prior", "kde", "--around", "0",
                      "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --around 0: only used by --prior gaussian, not by --prior kde\n"


@pytest.mark.slow
def test_sample_with_a_prior_saves_it_and_records_it(tmp_path):
    exp = tmp_path / "reference"
    shutil.copytree(REFERENCE, exp, ignore=shutil.ignore_patterns("OUT_*"))
    files = run(exp, "sample", epoch=10, device="cpu", seed=4, out_dir=tmp_path / "s", progress=False,
                log=lambda s: None, options=LatentOptions(prior="kde", num=2))
    saved = ws.latent_prior_file(exp, 10, "kde")
    assert saved.is_file() and isinstance(priors.Prior.load(saved), priors.KDEPrior)
    prov = read_provenance(files[0])
    assert prov["prior"] == "kde" and prov["latent_distribution"] == str(saved)
    assert "uniform on SO(3)" in prov["orientation"] and prov["prior_bandwidth"] > 0
