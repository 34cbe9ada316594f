"""Physical checks of the camera model: shot noise, EM excess noise, bleaching, SNR/CR budget."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from autodecoder.microscopy import camera, optics

# A pure photon counter: QE 1, gain 1, no offset, no read noise → ADU = photon count.
COUNTER = camera.CameraSettings(quantum_efficiency=1.0, gain_adu_per_e=1.0, offset_adu=0.0, read_noise_e=0.0)


def test_poisson_noise_variance_equals_mean() -> None:
    lam, n = 50.0, 512 * 512
    image = camera.expose(np.full((512, 512), lam), COUNTER, np.random.default_rng(0)).astype(np.float64)
    # Standard error of a Poisson sample variance: sqrt((mu4 - sigma^4) / n), mu4 = lam(1 + 3 lam).
    se_var = math.sqrt((lam + 2 * lam ** 2) / n)
    assert abs(image.var() - lam) < 4 * se_var
    assert abs(image.mean() - lam) < 4 * math.sqrt(lam / n)


def test_em_gain_doubles_the_relative_variance() -> None:
    lam, em, n_blocks = 20.0, 50.0, 16
    cam = dataclasses.replace(COUNTER, em_gain=em)
    image = camera.expose(np.full((n_blocks, 128, 128), lam), cam, np.random.default_rng(1)).astype(np.float64)
    ratios = image.reshape(n_blocks, -1).var(axis=1) / (em * image.reshape(n_blocks, -1).mean(axis=1))
    # Excess noise factor 2: Var = 2 M^2 lam, mean = M lam; tolerance from the spread of blocks.
    assert abs(ratios.mean() - 2.0) < 4 * ratios.std(ddof=1) / math.sqrt(n_blocks)


def test_offset_gain_read_noise_and_clipping() -> None:
    cam = camera.CameraSettings(quantum_efficiency=0.5, gain_adu_per_e=2.0, offset_adu=100.0, read_noise_e=3.0)
    dark = camera.expose(np.zeros((256, 256)), cam, np.random.default_rng(2)).astype(np.float64)
    assert dark.mean() == pytest.approx(100.0, abs=0.1)
    assert dark.std() == pytest.approx(math.sqrt(36 + 1 / 12), rel=0.03)
    bright = camera.expose(np.full((8, 8), 1e6), cam, np.random.default_rng(3))
    assert bright.dtype == np.uint16 and int(bright.max()) == 65535
    twelve_bit = camera.expose(np.full((8, 8), 1e6), dataclasses.replace(cam, bit_depth=12), np.random.default_rng(3))
    assert int(twelve_bit.max()) == 4095


def test_bleaching_over_frames_follows_exponential() -> None:
    tau, lam0, frames = 6.0, 1000.0, 12
    cam = camera.CameraSettings()
    rng = np.random.default_rng(4)
    phantom = np.ones((4, 32, 32))
    means = []
    for t in range(frames):
        image = camera.expose(lam0 * camera.photobleach(t, tau) * phantom, cam, rng)
        means.append((image.mean() - cam.offset_adu) / cam.adu_per_photon)
    expected = lam0 * np.exp(-np.arange(frames) / tau)
    # Standard error of each frame mean in photons (shot + read noise over 4096 voxels).
    se = np.sqrt(expected / cam.quantum_efficiency + (cam.read_noise_e / cam.quantum_efficiency) ** 2) / 64
    assert np.all(np.abs(np.array(means) - expected) < 5 * se + 0.5 / cam.adu_per_photon)
    slope = np.polyfit(np.arange(frames), np.log(means), 1)[0]
    assert -1 / slope == pytest.approx(tau, rel=0.02)


@pytest.fixture(scope="module")
def blurred_ball() -> tuple[np.ndarray, np.ndarray]:
    """A 4 µm-radius ball imaged with a Gaussian widefield PSF on a (0.5, 0.2, 0.2) µm grid."""
    z, y, x = np.meshgrid(np.arange(32) * 0.5, np.arange(96) * 0.2, np.arange(96) * 0.2, indexing="ij")
    ball = (z - 8) ** 2 + (y - 9.6) ** 2 + (x - 9.6) ** 2 <= 16
    vox = (0.5, 0.2, 0.2)
    clean = optics.blur(ball.astype(np.float32), optics.psf(optics.PSFSettings(model="gaussian"), vox))
    return clean, ball


@pytest.mark.parametrize("target_snr, target_cr", [(5.0, 1.3), (20.0, 2.0)])
@pytest.mark.parametrize("em_gain", [None, 100.0])
def test_requested_snr_and_cr_are_met(blurred_ball, target_snr: float, target_cr: float,
                                      em_gain: float | None) -> None:
    clean, ball = blurred_ball
    cam = camera.CameraSettings() if em_gain is None else camera.CameraSettings(
        em_gain=em_gain, gain_adu_per_e=0.05, read_noise_e=30.0)
    peak, background = camera.solve_photon_budget(clean, ball, target_snr, target_cr, cam)
    assert peak > 0 and background >= 0
    image = camera.expose(peak * clean / clean.max(), dataclasses.replace(cam, background_photons=background),
                          np.random.default_rng(5))
    snr, cr = camera.snr_cr(image, ball)
    assert abs(snr / target_snr - 1) < 0.10, snr
    assert abs(cr / target_cr - 1) < 0.10, cr


def test_unreachable_targets_are_reported(blurred_ball) -> None:
    clean, ball = blurred_ball
    # A large offset makes the background mean high relative to its noise: low SNR at high CR is impossible.
    cam = camera.CameraSettings(offset_adu=2000.0, gain_adu_per_e=1.0)
    with pytest.raises(ValueError):
        camera.solve_photon_budget(clean, ball, 2.0, 3.0, cam)


def test_snr_cr_definition() -> None:
    image = np.array([10.0, 10.0, 12.0, 8.0, 10.0, 30.0, 30.0])
    fg = np.array([0, 0, 0, 0, 0, 1, 1], bool)
    snr, cr = camera.snr_cr(image, fg)
    assert snr == pytest.approx(20.0 / np.std([10, 10, 12, 8, 10]))
    assert cr == pytest.approx(3.0)
