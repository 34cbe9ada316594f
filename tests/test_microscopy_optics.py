"""Physical checks of the microscope optics (PSFs, imaging of a point, depth and illumination)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autodecoder.microscopy import optics

# An air objective at moderate NA, where the textbook FWHM formulas are accurate.
AIR = dict(na=0.75, emission_um=0.52, excitation_um=0.52, ni=1.0, ns=1.0)


def _centre_profiles(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axial and lateral (x) profiles through the brightest voxel."""
    z, y, x = np.unravel_index(int(np.argmax(kernel)), kernel.shape)
    return kernel[:, y, x], kernel[z, y, :]


@pytest.mark.parametrize("modality", ["widefield", "confocal"])
@pytest.mark.parametrize("model", ["vectorial", "gibson-lanni", "gaussian"])
def test_psf_is_centred_and_sums_to_one(model: str, modality: str) -> None:
    settings = optics.PSFSettings(modality=modality, model=model, **AIR)
    kernel = optics.psf(settings, (0.25, 0.1, 0.1), (21, 41, 41))
    assert kernel.dtype == np.float32 and kernel.shape == (21, 41, 41)
    assert abs(float(kernel.sum(dtype=np.float64)) - 1.0) < 1e-5
    assert np.unravel_index(int(np.argmax(kernel)), kernel.shape) == (10, 20, 20)
    assert kernel.min() >= 0


def test_default_psf_shape_is_odd_and_covers_the_psf() -> None:
    settings = optics.PSFSettings(**AIR)
    vox = optics.fine_voxel_size((0.5, 0.2, 0.2), 3)
    kernel = optics.psf(settings, vox)
    axial, lateral = optics.theoretical_fwhm(settings)
    assert all(n % 2 == 1 for n in kernel.shape)
    assert (kernel.shape[0] - 1) * vox[0] >= 6 * axial - 2 * vox[0]
    assert (kernel.shape[2] - 1) * vox[2] >= 8 * lateral


def test_widefield_vectorial_lateral_fwhm_matches_theory_at_moderate_na() -> None:
    settings = optics.PSFSettings(model="vectorial", **AIR)
    kernel = optics.psf(settings, (0.1, 0.05, 0.05), (41, 65, 65))
    _, lateral_profile = _centre_profiles(kernel)
    measured = optics.fwhm(lateral_profile, 0.05)
    theory = 0.51 * 0.52 / 0.75
    assert optics.theoretical_fwhm(settings)[1] == pytest.approx(theory)
    assert abs(measured / theory - 1) < 0.10, (measured, theory)


def test_confocal_narrows_lateral_fwhm_by_about_sqrt2() -> None:
    # The sqrt(2) gain holds for a small pinhole (here 0.25 AU, equal wavelengths); the
    # tolerance is 10 %: sampling at 0.05 µm and non-Gaussian Airy tails shift it a little.
    vox, shape = (0.1, 0.05, 0.05), (21, 65, 65)
    wide = optics.psf(optics.PSFSettings(**AIR), vox, shape)
    conf = optics.psf(optics.PSFSettings(modality="confocal", pinhole_au=0.25, **AIR), vox, shape)
    ratio = optics.fwhm(_centre_profiles(wide)[1], 0.05) / optics.fwhm(_centre_profiles(conf)[1], 0.05)
    assert abs(ratio / math.sqrt(2) - 1) < 0.10, ratio
    # A 1 AU pinhole passes more emission light: narrower than widefield, wider than 0.25 AU.
    open_conf = optics.psf(optics.PSFSettings(modality="confocal", pinhole_au=1.0, **AIR), vox, shape)
    ratio_open = optics.fwhm(_centre_profiles(wide)[1], 0.05) / optics.fwhm(_centre_profiles(open_conf)[1], 0.05)
    assert 1.0 < ratio_open < ratio


def test_gaussian_psf_has_the_requested_fwhm() -> None:
    settings = optics.PSFSettings(model="gaussian", **AIR)
    kernel = optics.psf(settings, (0.05, 0.02, 0.02), (81, 61, 61))
    axial_profile, lateral_profile = _centre_profiles(kernel)
    axial, lateral = optics.theoretical_fwhm(settings)
    assert optics.fwhm(axial_profile, 0.05) == pytest.approx(axial, rel=0.02)
    assert optics.fwhm(lateral_profile, 0.02) == pytest.approx(lateral, rel=0.02)


def test_imaged_point_source_reproduces_psf_fwhm() -> None:
    vox, oversample = (0.5, 0.1, 0.1), 3
    fine = optics.fine_voxel_size(vox, oversample)
    kernel = optics.psf(optics.PSFSettings(**AIR), fine)
    psf_axial, psf_lateral = _centre_profiles(kernel)
    # The field (15 µm × 12.8 µm²) holds the whole PSF support, so no light is lost.
    phantom = np.zeros((30 * oversample, 128, 128), np.float32)
    phantom[15 * oversample + 1, 64, 64] = 1.0  # the middle fine plane of output plane 15
    image = optics.render(phantom, kernel, oversample)
    assert image.shape == (30, 128, 128)
    assert np.unravel_index(int(np.argmax(image)), image.shape) == (15, 64, 64)
    assert float(image.sum()) == pytest.approx(1.0 / oversample, rel=1e-4)  # mean over fine planes
    img_axial, img_lateral = _centre_profiles(image)
    assert abs(optics.fwhm(img_axial, vox[0]) / optics.fwhm(psf_axial, fine[0]) - 1) < 0.05
    assert abs(optics.fwhm(img_lateral, vox[2]) / optics.fwhm(psf_lateral, fine[2]) - 1) < 0.05


def test_delta_psf_without_noise_reproduces_the_phantom() -> None:
    rng = np.random.default_rng(0)
    coarse = rng.random((6, 20, 24)).astype(np.float32)
    delta = np.ones((1, 1, 1), np.float32)
    np.testing.assert_allclose(optics.render(coarse, delta, 1), coarse, rtol=1e-5, atol=1e-6)
    fine = np.repeat(coarse, 3, axis=0)  # constant within each output voxel
    np.testing.assert_allclose(optics.render(fine, delta, 3), coarse, rtol=1e-5, atol=1e-6)


def test_fwhm_of_sampled_gaussian() -> None:
    x = np.arange(-50, 51) * 0.1
    sigma = 0.8
    assert optics.fwhm(np.exp(-x ** 2 / (2 * sigma ** 2)), 0.1) == pytest.approx(2.3548 * sigma, rel=0.01)
    with pytest.raises(ValueError):
        optics.fwhm(np.ones(10), 1.0)


def test_depth_attenuation_on_a_uniform_slab_follows_the_power_law() -> None:
    z0, F = 3.0, 20.0
    mask = np.zeros((40, 4, 5), bool)
    mask[5:35] = True  # the slab starts below the top of the volume: counting starts there
    image = optics.apply_depth_attenuation(np.ones(mask.shape, np.float32), mask, z0, F)
    i = np.arange(30)
    expected = np.clip(((i - z0) / F + 1.0) ** -6.0, 0.0, 1.0)
    np.testing.assert_allclose(image[5:35, 2, 3], expected, rtol=1e-5)
    assert np.all(image[:5] == 1.0)
    # Two cells stacked in one column: the lower one is attenuated by both.
    stacked = np.zeros((30, 1, 1), bool)
    stacked[2:8] = stacked[15:20] = True
    factors = optics.depth_attenuation(stacked, 0.0, 10.0)[:, 0, 0]
    assert factors[15] == pytest.approx((6 / 10 + 1) ** -6, rel=1e-5)


def test_uneven_illumination_is_smooth_with_mean_one() -> None:
    field = optics.uneven_illumination((64, 80), strength=0.3, seed=4)
    assert field.shape == (64, 80) and field.dtype == np.float32
    assert float(field.mean()) == pytest.approx(1.0, abs=1e-5)
    assert float(field.min() / field.max()) == pytest.approx(0.7, abs=0.02)
    assert float(np.abs(np.diff(field, axis=1)).max()) < 0.02  # smooth: small neighbour steps
    np.testing.assert_array_equal(field, optics.uneven_illumination((64, 80), 0.3, seed=4))
