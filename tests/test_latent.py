"""The latent space: sample (fitted Gaussian), fit (unseen cell, decoder frozen), interpolate (codes and SO(3))."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import scipy.io
import torch

from autodecoder.decoding.types import plan
from autodecoder.decoding.options import LatentOptions
from autodecoder.model import checkpoints
from autodecoder.decoding import run as generation
from autodecoder.decoding import latent
from autodecoder.experiment import specs as specs_mod
from autodecoder.experiment import workspace as ws
from autodecoder.cli.test import main as test_main
from autodecoder.experiment.errors import UserError
from autodecoder.decoding.grid import decode_frames
from autodecoder.io.sequences import read_provenance, read_sequence
from autodecoder.model.decoder import Decoder
from conftest import REFERENCE, run_cli, sphere_sdf_sequence, trained_spheres, write_h5

pytestmark = pytest.mark.slow  # trains models or runs the command lines in processes


def _run(exp, kind, epoch=10, **kw):
    return generation.run(exp, kind, epoch=epoch, device="cpu", progress=False, log=lambda s: None, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A copy of the original's 10-epoch checkpoint (192-long codes, 6 sequences, rotations learned)."""
    exp = tmp_path_factory.mktemp("latent") / "reference"
    shutil.copytree(REFERENCE, exp, ignore=shutil.ignore_patterns("OUT_*"))
    return exp


# --------------------------------------------------------------------------
# the fitted distribution

def _spread_codes(n, p, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((p, p)) * 0.1
    return (rng.standard_normal((n, p)) @ mix + rng.standard_normal(p) * 0.05).astype(np.float32)


def test_temperature_zero_is_the_mean_code_exactly():
    codes = _spread_codes(6, 16)
    g = latent.fit_gaussian(codes)
    drawn = g.draw(5, 0.0, np.random.default_rng(1))
    assert np.array_equal(drawn, np.repeat(codes.astype(np.float64).mean(0).astype(np.float32)[None], 5, 0))
    jobs = plan("sample", codes, np.zeros((6, 3), np.float32), 4, seed=3,
                           options=LatentOptions(temperature=0.0, prior="gaussian"))
    assert len(jobs) == 4 and all(np.array_equal(j.code, drawn[0]) for j in jobs)
    rot = np.stack([j.angles for j in jobs])
    assert np.all(np.abs(rot) <= math.pi) and rot.std() > 0.5  # rotations uniform on SO(3), as XYZ angles


@pytest.mark.parametrize("n, p, pca", [(40, 8, None), (6, 16, None), (12, 10, 3)])
def test_many_draws_match_the_fitted_mean_and_covariance(n, p, pca):
    g = latent.fit_gaussian(_spread_codes(n, p), pca=pca)
    m = 200_000
    for temp in (1.0, 0.5):
        x = g.draw(m, temp, np.random.default_rng(7)).astype(np.float64)
        cov = g.covariance * temp ** 2
        # Standard errors of a Gaussian sample of size m: mean_i sqrt(Σ_ii/m),
        # covariance_ij sqrt((Σ_ii Σ_jj + Σ_ij²)/m). Five of them (p ~ 6e-7 per entry)
        # with a fixed seed: the test is deterministic and the bound is not loose
        # (a 1 % error of the spread would be ~3 standard errors).
        d = np.sqrt(np.diag(cov))
        assert np.all(np.abs(x.mean(0) - g.mean) <= 5 * d / math.sqrt(m) + 1e-7)
        se = np.sqrt((np.outer(d ** 2, d ** 2) + cov ** 2) / m)
        assert np.all(np.abs(np.cov(x, rowvar=False) - cov) <= 5 * se + 1e-9)


def test_shrinkage_when_fewer_codes_than_dimensions():
    codes = _spread_codes(6, 16)
    g = latent.fit_gaussian(codes)
    assert g.method == "ledoit-wolf" and 0 < g.shrinkage <= 1
    assert np.linalg.eigvalsh(g.covariance).min() > 0  # positive definite (the sample covariance has rank 5)
    assert np.linalg.matrix_rank(np.cov(codes.astype(np.float64), rowvar=False)) == 5
    # scikit-learn's LedoitWolf, written out (it is not a dependency)
    x = codes.astype(np.float64) - codes.astype(np.float64).mean(0)
    n, p = x.shape
    x2 = x ** 2
    trace = x2.sum() / n
    mu = trace / p
    beta_ = (x2.T @ x2).sum()
    delta_ = ((x.T @ x) ** 2).sum() / n ** 2
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2 * mu * trace + p * mu ** 2) / p
    alpha = min(beta, delta) / delta
    s = x.T @ x / n
    assert g.shrinkage == pytest.approx(alpha, rel=1e-9)
    assert np.allclose(g.covariance, (1 - alpha) * s + alpha * mu * np.eye(p), atol=1e-12)
    # more codes than dimensions: the plain sample covariance
    many = _spread_codes(30, 8)
    g2 = latent.fit_gaussian(many)
    assert g2.method == "sample" and np.allclose(g2.covariance, np.cov(many.astype(np.float64), rowvar=False))
    with pytest.raises(UserError, match="all 3 learned codes are equal"):
        latent.fit_gaussian(np.ones((3, 4)))


def test_pca_keeps_the_leading_directions(tmp_path):
    codes = _spread_codes(12, 10)
    g = latent.fit_gaussian(codes, pca=3)
    assert g.method == "pca" and g.components == 3 and np.linalg.matrix_rank(g.covariance) == 3
    w, v = np.linalg.eigh(np.cov(codes.astype(np.float64), rowvar=False))
    assert np.allclose(g.eigenvalues, w[::-1][:3])
    x = g.draw(50, 1.0, np.random.default_rng(0)).astype(np.float64) - g.mean
    top = v[:, ::-1][:, :3]
    assert np.abs(x - x @ top @ top.T).max() < 1e-5  # the draws stay in the span of the 3 components
    with pytest.raises(UserError, match="--pca 12"):
        latent.fit_gaussian(codes, pca=12)
    g.save(tmp_path / "g.npz")
    back = latent.LatentGaussian.load(tmp_path / "g.npz")
    assert back.method == "pca" and np.array_equal(back.factor, g.factor) and np.array_equal(back.mean, g.mean)


# --------------------------------------------------------------------------
# the mix prior (mixing of nearest learned codes)

def _circle_codes(n: int, seed: int, noise: float = 0.05) -> np.ndarray:
    """``n`` codes of length 6 uniform on a circle of radius 3 in a tilted plane, plus a little noise."""
    rng = np.random.default_rng(seed)
    plane = np.linalg.qr(np.random.default_rng(50).standard_normal((6, 2)))[0]
    a = rng.uniform(0, 2 * math.pi, n)
    return 3 * np.stack([np.cos(a), np.sin(a)], 1) @ plane.T + noise * rng.standard_normal((n, 6)), plane


def test_mix_prior_recovers_a_known_distribution_and_stays_on_it():
    from autodecoder.decoding import priors
    from autodecoder.evaluation.generative import energy_test
    from scipy import stats
    codes, plane = _circle_codes(200, 1)
    mix = priors.fit_prior("mix", codes)
    x = mix.draw(2000, 1.0, np.random.default_rng(2)).astype(np.float64)
    y = x @ plane
    # the angle around the circle is uniform (KS against U(−π, π), as many draws as fresh codes: with far
    # more, KS would find the 200 learned codes' own departure from uniform, which draws inherit) and
    # the draws stay on the circle
    angle = np.arctan2(y[:300, 1], y[:300, 0])
    assert stats.kstest(angle, stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 0.01
    off = np.abs(np.linalg.norm(y, axis=1) - 3)
    kde = priors.fit_prior("kde", codes).draw(2000, 1.0, np.random.default_rng(2)).astype(np.float64) @ plane
    assert np.median(off) < 0.12 < np.median(np.abs(np.linalg.norm(kde, axis=1) - 3))  # kde spreads off it
    # against fresh codes of the truth: an energy permutation test (the Gaussian fails it: a filled disc)
    fresh = _circle_codes(300, 3)[0]
    _, p = energy_test(x[:300], fresh, 300, np.random.default_rng(4))
    gauss = priors.fit_prior("gaussian", codes).draw(300, 1.0, np.random.default_rng(2))
    _, p_gauss = energy_test(gauss, fresh, 300, np.random.default_rng(4))
    assert p > 0.01 and p_gauss < 0.01, (p, p_gauss)
    # held-out codes are likelier under mix than under kde and the Gaussian (nats per code)
    held = _circle_codes(300, 5)[0]
    assert mix.log_density(held).mean() > priors.fit_prior("kde", codes).log_density(held).mean() + 0.5
    assert mix.log_density(held).mean() > priors.fit_prior("gaussian", codes).log_density(held).mean() + 2.0


def test_mix_prior_density_integrates_to_one_and_seeds_reproduce(tmp_path):
    from autodecoder.decoding import priors
    codes = _circle_codes(30, 6, noise=0.3)[0]
    mix = priors.fit_prior("mix", codes, pca=2)
    assert mix.points.shape == (30, 2) and mix.neighbours == 4 and "leave-one-out" in mix.describe()
    # ∫ p over the 2-D subspace = 1: a 400 × 400 grid over ±8 scales of the codes
    span = 8 * mix.space.scales
    g0, g1 = (np.linspace(-s, s, 400) for s in span)
    y = np.stack(np.meshgrid(g0, g1, indexing="ij"), -1).reshape(-1, 2)
    cell = (g0[1] - g0[0]) * (g1[1] - g1[0])
    assert np.exp(mix.log_density(mix.space.lift(y).astype(np.float64) * 1.0)).sum() * cell == pytest.approx(1, abs=0.01)
    a = mix.draw(9, 0.7, np.random.default_rng(3))
    assert np.array_equal(a, priors.fit_prior("mix", codes, pca=2).draw(9, 0.7, np.random.default_rng(3)))
    back = priors.Prior.load(mix.save(tmp_path / "mix.npz"))
    assert isinstance(back, priors.MixPrior) and np.array_equal(back.draw(9, 0.7, np.random.default_rng(3)), a)
    # temperature 0: the learned codes' projections (copies); --around is the Gaussian's alone
    x = mix.draw(40, 0.0, np.random.default_rng(1)).astype(np.float64)
    assert np.abs(x[:, None] - mix.space.lift(mix.points)[None]).max(-1).min(1).max() < 1e-5
    with pytest.raises(UserError, match="--around: only used by --prior gaussian, not by --prior mix"):
        mix.draw(2, 1.0, np.random.default_rng(0), center=codes[0])
    with pytest.raises(UserError, match="--prior mix: needs at least 3 learned codes"):
        priors.fit_prior("mix", codes[:2])
    held = _circle_codes(50, 7, noise=0.3)[0]
    val = priors.fit_prior("mix", codes, pca=2, validation=held)
    assert "validation" in val.describe() and val.log_density(held).mean() >= mix.log_density(held).mean() - 1e-9


def test_sample_decodes_the_mean_code_and_saves_the_distribution(reference, tmp_path):
    files = _run(reference, "sample", seed=2, out_dir=tmp_path / "s0",
                 options=LatentOptions(temperature=0.0, num=2, prior="gaussian"))
    trained = checkpoints.load_trained(reference, 10, 192)
    saved = ws.latent_prior_file(reference, 10, "gaussian")
    assert saved.name == "e0010_latent_gaussian.npz" and saved.parent == reference / ws.CODES_DIR
    g = latent.LatentGaussian.load(saved)
    assert np.allclose(g.mean, trained.codes.astype(np.float64).mean(0))
    specs = specs_mod.load(reference, specs_mod.TEST)
    dec = Decoder.from_specs(specs)
    checkpoints.load_into(dec, trained.state, trained.source)
    prov = read_provenance(files[0])
    want = np.stack(list(decode_frames(dec, g.mean.astype(np.float32), np.asarray(prov["rotation_angles"]),
                                       tuple(specs["ReconstructionDims"]), 4, 4096)))
    assert np.array_equal(read_sequence(files[0]), want)
    assert prov["type"] == "sample" and prov["temperature"] == 0.0
    # reproducible with --seed, different without
    a = _run(reference, "sample", seed=5, out_dir=tmp_path / "a", options=LatentOptions(num=2))
    b = _run(reference, "sample", seed=5, out_dir=tmp_path / "b", options=LatentOptions(num=2))
    assert [f.name for f in a] == [f.name for f in b]
    assert np.array_equal(read_sequence(a[1]), read_sequence(b[1]))
    assert not np.array_equal(read_provenance(a[0])["code"], read_provenance(a[1])["code"])


# --------------------------------------------------------------------------
# interpolation

@pytest.fixture(scope="module")
def reconstructions(reference, tmp_path_factory):
    return _run(reference, "reconstruct", seed=0, out_dir=tmp_path_factory.mktemp("rec"))


@pytest.mark.parametrize("path", ["slerp", "linear"])
def test_interpolate_ends_reproduce_the_reconstructions(reference, reconstructions, tmp_path, path):
    rec = reconstructions
    out = tmp_path / "int"
    files = _run(reference, "interpolate", seed=0, out_dir=out,
                 options=LatentOptions(start=1, end=4, steps=3, path=path))
    assert len(files) == 3
    assert np.abs(read_sequence(files[0]) - read_sequence(rec[1])).max() <= 1e-5
    assert np.abs(read_sequence(files[-1]) - read_sequence(rec[4])).max() <= 1e-5
    sheet = ws.interpolation_sheet(out, ws.interpolation_tag(1, 4, path))
    assert sheet.is_file() and files[0].name.startswith(f"int_001_to_004_{path}_seq_000_rot_")
    import matplotlib.image
    img = matplotlib.image.imread(sheet)
    assert img.shape[:2] == (3 * (24 + 2) + 2, 4 * (20 + 2) + 2)  # 3 steps × 4 frames of 24×20 MIPs


def test_interpolation_paths_and_rotations():
    a, b = np.array([1.0, 0, 0, 0], np.float32), np.array([0, 2.0, 0, 0], np.float32)
    s = latent.interpolation_steps(5)
    lin = latent.interpolate_codes(a, b, s, "linear")
    assert np.allclose(lin[2], [0.5, 1.0, 0, 0])
    sl = latent.interpolate_codes(a, b, s, "slerp")
    assert np.array_equal(sl[0], a) and np.array_equal(sl[-1], b)
    assert np.allclose(sl[2], [math.sqrt(0.5), 2 * math.sqrt(0.5), 0, 0], atol=1e-6)  # 45° on the arc
    ea, eb = np.array([0.3, -0.2, 0.1], np.float32), np.array([-1.0, 0.8, 2.5], np.float32)
    rots = latent.interpolate_angles(ea, eb, s)
    assert np.array_equal(rots[0], ea) and np.array_equal(rots[-1], eb)
    total = latent.rotation_distance(ea, eb)
    for k in range(1, 4):  # on the geodesic: distances from both ends add up, in proportion to s
        assert latent.rotation_distance(ea, rots[k]) == pytest.approx(s[k] * total, abs=1e-5)
        assert latent.rotation_distance(rots[k], eb) == pytest.approx((1 - s[k]) * total, abs=1e-5)
    with pytest.raises(UserError, match="--steps 1"):
        latent.interpolation_steps(1)


# --------------------------------------------------------------------------
# fitting an unseen cell

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    exp = trained_spheres(root, [0.3, 0.45, 0.6], (16, 16, 16), 3, 0.15, NumEpochs=40, FramesPerBatch=3,
                          OptRotEpoch=20, LogFrequency=40, CodeRegularizationLambda=1e-6,
                          TrainSampleFraction=0.1, ReconstructionDims=[16, 16, 16],
                          LearningRateSchedule=[{"Type": "Constant", "Value": 2e-3}] * 3)
    target = root / "unseen.h5"
    write_h5(target, sphere_sdf_sequence((16, 16, 16), 3, 0.5, 0.1, (0.1, 0.0, 0.0)))
    return exp, target


def test_fit_improves_on_its_start_and_writes_its_outputs(tiny_model):
    exp, target = tiny_model
    from autodecoder.decoding.fitting import fit_code
    from autodecoder.evaluation.metrics import dice
    specs = specs_mod.load(exp, specs_mod.TEST)
    trained = checkpoints.load_trained(exp, 40, specs["CodeLength"])
    dec = Decoder.from_specs(specs)
    checkpoints.load_into(dec, trained.state, trained.source)
    before = {k: v.clone() for k, v in dec.state_dict().items()}
    mean = trained.codes.astype(np.float64).mean(0)
    res = fit_code(dec, mean, specs, target, iterations=60, lr=2e-2, seed=0, progress=False, log=lambda s: None)
    assert res.final_loss < 0.85 * res.start_loss
    assert all(torch.equal(v, dec.state_dict()[k]) for k, v in before.items())  # decoder frozen
    truth = read_sequence(target)

    def score(code, angles):
        rec = np.stack(list(decode_frames(dec, code, angles, (16, 16, 16), 3, 4096)))
        return dice(rec <= 0, truth <= 0)
    assert score(res.code, res.angles) > score(mean.astype(np.float32), np.zeros(3))

    files = _run(exp, "fit", epoch=40, seed=0, options=LatentOptions(target=str(target), iterations=60,
                                                                                   lr=2e-2))
    assert len(files) == 1 and files[0].parent == exp / "OUT_fit" and files[0].name.startswith("fit_unseen_seq_000_")
    prov = read_provenance(files[0])
    assert prov["type"] == "fit" and len(prov["dice_per_frame"]) == 3
    assert prov["dice_mean"] == pytest.approx(np.mean(prov["dice_per_frame"]))
    assert read_sequence(files[0]).shape == truth.shape  # on the target's grid and frames
    code_file = ws.fit_code_file(exp / "OUT_fit", "unseen")
    mat = scipy.io.loadmat(code_file)
    assert mat["lat_vecs"].shape == (1, 8) and mat["rot_ang"].shape == (1, 3)
    assert mat["dice_mean"].item() == pytest.approx(prov["dice_mean"])
    # variations of the fitted cell: temperature 0 gives the fitted code and angles back
    around = _run(exp, "sample", epoch=40, seed=1,
                  options=LatentOptions(around=str(code_file), temperature=0.0, num=2))
    assert around[0].parent == exp / "OUT_sample" and around[0].name.startswith("smp_around_fit_unseen_code_seq_000")
    p = read_provenance(around[0])
    assert np.allclose(p["code"], mat["lat_vecs"][0]) and np.allclose(p["rotation_angles"], mat["rot_ang"][0])
    spread = _run(exp, "sample", epoch=40, seed=1, out_dir=exp / "spread",
                  options=LatentOptions(around=str(code_file), num=2))
    assert not np.allclose(read_provenance(spread[0])["code"], mat["lat_vecs"][0])
    assert sorted(d.name for d in exp.iterdir() if d.name.startswith("OUT_")) == ["OUT_fit", "OUT_sample"]


# --------------------------------------------------------------------------
# command line

def test_new_types_write_to_their_own_folders(reference, capsys):
    assert test_main(["-x", str(reference), "-t", "sample", "-e", "10", "--num", "1", "--seed", "0",
                      "--no-progress"]) == 0
    assert test_main(["-x", str(reference), "-t", "interpolate", "-e", "10", "--from", "0", "--to", "2",
                      "--steps", "2", "--path", "linear", "--no-progress"]) == 0
    assert len(list((reference / "OUT_sample").glob("smp_seq_000_rot_*.h5"))) == 1
    assert len(list((reference / "OUT_interpolate").glob("int_000_to_002_linear_seq_*.h5"))) == 2
    assert (reference / "OUT_interpolate" / "int_000_to_002_linear_sheet.png").is_file()
    assert not (reference / "OUT_randomgen").exists() and not (reference / "OUT_reconstruct").exists()


def test_bad_option_one_line_error_cli(reference):
    res = run_cli("test.py", "-x", reference, "-e", "10", "-t", "generate", "--temperature", "1")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == "error: --temperature: only used by -t sample, not by -t generate"


@pytest.mark.parametrize("args, message", [
    (["-t", "fit"], "-t fit: needs --target FILE (missing --target)"),
    (["-t", "interpolate", "--from", "0"], "-t interpolate: needs --from I --to J (missing --to)"),
    (["-t", "sample", "--target", "x.h5"], "--target: only used by -t fit, not by -t sample"),
    (["-t", "reconstruct", "--steps", "3"], "--steps: only used by -t interpolate"),
    (["-t", "interpolate", "--from", "0", "--to", "6"], "--to 6: expected a learned code's row, 0 … 5"),
    (["-t", "interpolate", "--from", "0", "--to", "1", "--steps", "1"], "--steps 1: expected an integer >= 2"),
    (["-t", "sample", "--pca", "9"], "--pca 9: expected 1 … 5 components"),
    (["-t", "sample", "--temperature", "-1"], "--temperature -1.0: expected a number >= 0"),
    (["-t", "sample", "--around", "nothing.mat"], "--around nothing.mat: no such code file"),
    (["-t", "fit", "--target", "nothing.h5"], "--target nothing.h5: file not found"),
    (["-t", "fit", "--target", "x.h5", "--clamp", "0"], "--clamp 0.0: expected a number > 0"),
    (["-t", "sample", "--clamp", "0.1"], "--clamp: only used by -t fit, not by -t sample"),
])
def test_bad_options_one_line_error(reference, args, message, capsys):
    assert test_main(["-x", str(reference), "-e", "10", "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
