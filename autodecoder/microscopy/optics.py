"""The microscope optics: point spread functions, convolution, depth and illumination effects.

Conventions used throughout this module:

* volumes are float32 arrays ``(Z, Y, X)``; Z is the optical axis and z index 0 is the
  side facing the objective (light from deeper voxels crosses the voxels above them);
* voxel sizes are ``voxel_size_zyx = (vz, vy, vx)`` in µm (typically anisotropic, e.g.
  ``(0.5, 0.2, 0.2)``); wavelengths and refractive-index-free lengths are in µm;
* the phantom is rendered on a grid ``oversample`` times finer in z than the output
  (see :func:`fine_voxel_size`), blurred with a PSF sampled on that fine grid and then
  averaged in z to the output spacing (:func:`render`), so that the axial integration of
  each output plane and sub-voxel axial positions are represented.

PSFs come from ``psfmodels`` (vectorial model of Aguet et al. 2009 and the scalar
Gibson–Lanni model, widefield and confocal) or from a Gaussian fitted to the textbook
FWHM formulas.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import psfmodels
from scipy.signal import fftconvolve
from scipy.special import ndtr

# FWHM = 2 sqrt(2 ln 2) sigma for a Gaussian.
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_PSFMODELS_NAMES = {"vectorial": "vectorial", "gibson-lanni": "scalar"}


@dataclass(frozen=True)
class PSFSettings:
    """Microscope parameters that determine the PSF (hashable, so PSFs can be cached).

    Attributes:
        modality: "widefield" or "confocal" (point-scanning, product of the excitation
            PSF and the pinhole-filtered emission PSF).
        model: "vectorial" (Aguet), "gibson-lanni" (scalar) or "gaussian" (Gaussian with
            the FWHMs of :func:`theoretical_fwhm`).
        na: numerical aperture of the objective.
        emission_um: emission wavelength in µm (0.52 ≈ GFP).
        excitation_um: excitation wavelength in µm (used by the confocal modality only).
        ni: refractive index of the immersion medium (design = actual: no mismatch).
        ns: refractive index of the specimen.
        depth_um: depth of the focal plane below the coverslip in µm; with ``ns != ni``
            this adds the depth-dependent spherical aberration of the Gibson–Lanni model.
        pinhole_au: confocal pinhole diameter in Airy units (1 AU = 1.22 λ_em / NA).
    """

    modality: Literal["widefield", "confocal"] = "widefield"
    model: Literal["vectorial", "gibson-lanni", "gaussian"] = "vectorial"
    na: float = 1.0
    emission_um: float = 0.52
    excitation_um: float = 0.488
    ni: float = 1.33
    ns: float = 1.37
    depth_um: float = 0.0
    pinhole_au: float = 1.0

    def __post_init__(self) -> None:
        if self.modality not in ("widefield", "confocal"):
            raise ValueError(f"unknown modality {self.modality!r}")
        if self.model not in ("vectorial", "gibson-lanni", "gaussian"):
            raise ValueError(f"unknown PSF model {self.model!r}")
        if not 0 < self.na < self.ni:
            raise ValueError(f"need 0 < NA < ni, got NA={self.na}, ni={self.ni}")
        if min(self.emission_um, self.excitation_um, self.pinhole_au) <= 0:
            raise ValueError("wavelengths and pinhole size must be positive")


def theoretical_fwhm(settings: PSFSettings) -> tuple[float, float]:
    """Textbook FWHM ``(axial_um, lateral_um)`` of the intensity PSF.

    Widefield: lateral 0.51 λ/NA, axial 0.88 λ / (n − √(n² − NA²)) with λ the emission
    wavelength and n the immersion index. Confocal: the product of Gaussian excitation and
    emission PSFs, FWHM = f_ex f_em / √(f_ex² + f_em²), i.e. the widefield value / √2 for
    equal wavelengths (the small-pinhole limit; a 1 AU pinhole narrows less).
    """

    def widefield(wavelength: float) -> tuple[float, float]:
        n, na = settings.ni, settings.na
        return 0.88 * wavelength / (n - math.sqrt(n * n - na * na)), 0.51 * wavelength / na

    em = widefield(settings.emission_um)
    if settings.modality == "widefield":
        return em
    ex = widefield(settings.excitation_um)
    return tuple(a * b / math.hypot(a, b) for a, b in zip(ex, em))  # type: ignore[return-value]


def fine_voxel_size(voxel_size_zyx: tuple[float, float, float], oversample: int = 3) -> tuple[float, float, float]:
    """Voxel size in µm of the phantom grid that :func:`render` expects (z divided by ``oversample``)."""
    vz, vy, vx = voxel_size_zyx
    return (vz / oversample, vy, vx)


def default_psf_shape(settings: PSFSettings, voxel_size_zyx: tuple[float, float, float]) -> tuple[int, int, int]:
    """Odd PSF shape ``(Z, Y, X)`` covering ±3 axial FWHM and the defocused light cone.

    Laterally the support is ±4 lateral FWHM or, if larger, the radius of the geometric
    light cone (half-angle asin(NA/ni)) at the axial edge, so that the out-of-focus
    widefield rings are not cut off. Widefield FWHMs are used for both modalities.
    """
    axial, lateral = theoretical_fwhm(PSFSettings(na=settings.na, emission_um=settings.emission_um, ni=settings.ni))
    half_z = 3.0 * axial
    half_r = max(4.0 * lateral, half_z * math.tan(math.asin(settings.na / settings.ni)))
    vz, vy, vx = voxel_size_zyx
    return tuple(2 * math.ceil(h / v) + 1 for h, v in ((half_z, vz), (half_r, vy), (half_r, vx)))  # type: ignore[return-value]


def psf(settings: PSFSettings, voxel_size_zyx: tuple[float, float, float],
        shape_zyx: tuple[int, int, int] | None = None) -> np.ndarray:
    """The PSF as float32 ``(Z, Y, X)``, centred (point source at the central voxel), summing to 1.

    Args:
        settings: the microscope.
        voxel_size_zyx: sampling (vz, vy, vx) in µm; for :func:`render` pass the fine grid.
            The psfmodels models need vy == vx.
        shape_zyx: odd sizes; by default :func:`default_psf_shape`.

    Results are cached per (settings, voxel size, shape); a fresh copy is returned.
    """
    vox = tuple(float(v) for v in voxel_size_zyx)
    shape = default_psf_shape(settings, vox) if shape_zyx is None else tuple(int(n) for n in shape_zyx)
    if len(shape) != 3 or any(n % 2 == 0 or n < 1 for n in shape):
        raise ValueError(f"PSF shape must be three odd sizes, got {shape}")
    return _cached_psf(settings, vox, shape).copy()


@functools.lru_cache(maxsize=32)
def _cached_psf(settings: PSFSettings, vox: tuple[float, ...], shape: tuple[int, ...]) -> np.ndarray:
    kernel = gaussian_psf(settings, vox, shape) if settings.model == "gaussian" else _psfmodels_psf(settings, vox, shape)
    kernel.flags.writeable = False
    return kernel


def _psfmodels_psf(settings: PSFSettings, vox: tuple[float, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Vectorial or Gibson–Lanni PSF from psfmodels (square in XY, then cropped to ``shape``)."""
    vz, vy, vx = vox
    if not math.isclose(vy, vx, rel_tol=1e-6):
        raise ValueError("psfmodels PSFs need square pixels (vy == vx); use model='gaussian' otherwise")
    nz, ny, nx = shape
    n = max(ny, nx)
    common = dict(nx=n, dxy=vy, dz=vz, pz=settings.depth_um, NA=settings.na, ns=settings.ns,
                  ni=settings.ni, ni0=settings.ni, model=_PSFMODELS_NAMES[settings.model])
    if settings.modality == "widefield":
        kernel = psfmodels.make_psf(nz, wvl=settings.emission_um, **common)
    else:
        kernel = psfmodels.confocal_psf(nz, ex_wvl=settings.excitation_um, em_wvl=settings.emission_um,
                                        pinhole_au=settings.pinhole_au, **common)
    cy, cx = (n - ny) // 2, (n - nx) // 2
    kernel = np.clip(kernel[:, cy:cy + ny, cx:cx + nx], 0.0, None)
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_psf(settings: PSFSettings, voxel_size_zyx: tuple[float, float, float],
                 shape_zyx: tuple[int, int, int] | None = None) -> np.ndarray:
    """Separable Gaussian PSF float32 ``(Z, Y, X)`` with the FWHMs of :func:`theoretical_fwhm`.

    Each voxel holds the Gaussian integrated over its extent (so very narrow PSFs tend to a
    delta and coarse sampling keeps the right total); the result sums to 1.
    """
    shape = default_psf_shape(settings, voxel_size_zyx) if shape_zyx is None else shape_zyx
    axial, lateral = theoretical_fwhm(settings)
    kernels = []
    for n, spacing, width in zip(shape, voxel_size_zyx, (axial, lateral, lateral)):
        edges = (np.arange(n + 1) - n / 2.0) * spacing / (width / _FWHM_PER_SIGMA)
        kernels.append(np.diff(ndtr(edges)))
    kernel = kernels[0][:, None, None] * kernels[1][None, :, None] * kernels[2][None, None, :]
    return (kernel / kernel.sum()).astype(np.float32)


def fwhm(profile: np.ndarray, spacing: float = 1.0) -> float:
    """Full width at half maximum of a 1-D single-peaked profile, in units of ``spacing``.

    Walks outwards from the maximum to the first samples below half the maximum and
    interpolates linearly between neighbouring samples; the baseline is taken as 0.
    """
    p = np.asarray(profile, dtype=np.float64).ravel()
    peak = int(np.argmax(p))
    half = p[peak] / 2.0
    left = peak
    while left > 0 and p[left - 1] >= half:
        left -= 1
    right = peak
    while right < p.size - 1 and p[right + 1] >= half:
        right += 1
    if left == 0 or right == p.size - 1:
        raise ValueError("profile does not fall below half maximum on both sides")
    x_left = left - (p[left] - half) / (p[left] - p[left - 1])
    x_right = right + (p[right] - half) / (p[right] - p[right + 1])
    return float((x_right - x_left) * spacing)


def blur(volume_zyx: np.ndarray, psf_zyx: np.ndarray) -> np.ndarray:
    """Convolve a ``(Z, Y, X)`` volume with an odd-sized PSF; float32, same shape, ≥ 0.

    FFT convolution with zero padding (light from outside the volume is not modelled).
    """
    if any(n % 2 == 0 for n in psf_zyx.shape):
        raise ValueError(f"PSF sizes must be odd for a centred 'same' convolution, got {psf_zyx.shape}")
    out = fftconvolve(np.asarray(volume_zyx, np.float32), np.asarray(psf_zyx, np.float32), mode="same")
    # FFT round-off gives tiny negative values where the image is dark; photons are >= 0.
    return np.clip(out, 0.0, None).astype(np.float32, copy=False)


def render(fine_zyx: np.ndarray, psf_fine: np.ndarray, oversample: int = 3) -> np.ndarray:
    """Image a phantom sampled ``oversample`` times finer in z than the output.

    Args:
        fine_zyx: float ``(Z·oversample, Y, X)`` emitter density on the fine grid
            (:func:`fine_voxel_size`); Z·oversample must be a multiple of ``oversample``.
        psf_fine: PSF sampled on the same fine grid (e.g. ``psf(s, fine_voxel_size(v))``).
        oversample: fine planes per output plane.

    Returns:
        float32 ``(Z, Y, X)``: the blurred volume averaged over each group of ``oversample``
        fine planes, i.e. the mean intensity within each output voxel.
    """
    zf, ny, nx = fine_zyx.shape
    if oversample < 1 or zf % oversample:
        raise ValueError(f"fine z size {zf} is not a multiple of oversample={oversample}")
    blurred = blur(fine_zyx, psf_fine)
    return blurred.reshape(zf // oversample, oversample, ny, nx).mean(axis=1, dtype=np.float32)


def depth_attenuation(mask_zyx: np.ndarray, z0_voxels: float = 10.0, F: float = 200.0) -> np.ndarray:
    """Per-voxel attenuation factors float32 ``(Z, Y, X)`` in [0, 1] from the tissue above.

    In each (y, x) column, a voxel with ``i`` foreground voxels above it (z index 0 = the
    objective side; for a foreground voxel ``i`` is its zero-based rank from the top of
    the column) gets ``b(i) = clip(((i − z0)/F + 1)^−6, 0, 1)``. ``z0`` and ``F`` are in
    voxels of the mask's grid; scaling both with the grid keeps the physics unchanged.
    """
    mask = np.asarray(mask_zyx, dtype=bool)
    above = np.cumsum(mask, axis=0, dtype=np.int64) - mask
    base = (above - z0_voxels) / float(F) + 1.0
    # base <= 0 would mean "before the surface" (only for z0 > F): no attenuation there.
    factor = np.where(base > 0, np.maximum(base, 1e-12) ** -6.0, 1.0)
    return np.clip(factor, 0.0, 1.0).astype(np.float32)


def apply_depth_attenuation(volume_zyx: np.ndarray, mask_zyx: np.ndarray, z0_voxels: float = 10.0,
                            F: float = 200.0, keep_max: bool = False) -> np.ndarray:
    """Multiply a ``(Z, Y, X)`` volume by :func:`depth_attenuation` of ``mask_zyx`` (same grid).

    ``keep_max`` rescales the result to the input's maximum (as in min–max normalised
    pipelines); physically the light is lost, so the default keeps the absolute scale.
    """
    out = np.asarray(volume_zyx, np.float32) * depth_attenuation(mask_zyx, z0_voxels, F)
    if keep_max and out.max() > 0:
        out *= np.float32(np.max(volume_zyx) / out.max())
    return out


def uneven_illumination(shape_yx: tuple[int, int], strength: float = 0.2, seed: int | None = None) -> np.ndarray:
    """Smooth multiplicative illumination field float32 ``(Y, X)`` with mean 1 (vignetting).

    A Gaussian fall-off around a centre displaced randomly (up to a quarter of the field
    half-size, reproducible with ``seed``); at the farthest corner the field is
    ``1 − strength`` times its peak. Broadcast it over Z to apply it to a volume.
    """
    if not 0.0 <= strength < 1.0:
        raise ValueError(f"strength must be in [0, 1), got {strength}")
    ny, nx = shape_yx
    if strength == 0.0:
        return np.ones((ny, nx), np.float32)
    rng = np.random.default_rng(seed)
    cy, cx = (np.array([ny - 1, nx - 1]) / 2.0) * (1.0 + rng.uniform(-0.25, 0.25, size=2))
    yy, xx = np.meshgrid(np.arange(ny) - cy, np.arange(nx) - cx, indexing="ij")
    r2 = yy ** 2 + xx ** 2
    sigma2 = -r2.max() / (2.0 * math.log(1.0 - strength))
    field = np.exp(-r2 / (2.0 * sigma2))
    return (field / field.mean()).astype(np.float32)
