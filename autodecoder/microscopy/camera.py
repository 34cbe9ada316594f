"""The detector and time: photobleaching, photon and read noise, gain, offset, bit depth.

Conventions: images are arrays of any shape, typically one frame ``(Z, Y, X)``; inputs to
:func:`expose` are expected photon counts per voxel (float, ≥ 0) reaching the detector
during one exposure; outputs are uint16 ADU with the camera offset included, as a real
camera writes them. Times are in frames (the frame interval belongs to the caller).

Noise model of one pixel (``a = gain · QE · M`` ADU per photon, M the EM gain or 1):

* electrons ``n ~ Poisson(QE · (photons + background_photons))``;
* with EM gain, ``n ~ Gamma(shape=n, scale=M)`` (excess noise factor F = 2 at high gain);
* ``+ Normal(0, read_noise_e)``, ``× gain_adu_per_e + offset_adu``, rounded and clipped
  to ``[0, 2^bit_depth − 1]``.

Hence the expected value is ``a · λ + offset`` and the variance
``F · gain · M · a · λ + gain² · read² + 1/12`` ADU² for λ expected photons (the last
term is the rounding error).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraSettings:
    """A scientific camera (defaults ≈ a 16-bit sCMOS: 0.46 e-/ADU, 100 ADU offset).

    Attributes:
        quantum_efficiency: fraction of photons converted to electrons.
        gain_adu_per_e: conversion gain, ADU per (post-EM) electron.
        offset_adu: bias added to every pixel, in ADU.
        read_noise_e: read noise in electrons rms.
        em_gain: electron-multiplying gain (EMCCD); None = no EM stage.
        bit_depth: ADC depth; values are clipped to [0, 2^bit_depth − 1] and stored as uint16.
        background_photons: uniform background (autofluorescence, stray light) in photons
            per voxel per exposure, added to the signal before detection.
    """

    quantum_efficiency: float = 0.8
    gain_adu_per_e: float = 2.17
    offset_adu: float = 100.0
    read_noise_e: float = 1.4
    em_gain: float | None = None
    bit_depth: int = 16
    background_photons: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.quantum_efficiency <= 1:
            raise ValueError("quantum_efficiency must be in (0, 1]")
        if self.gain_adu_per_e <= 0 or self.read_noise_e < 0 or self.background_photons < 0:
            raise ValueError("gain must be positive; read noise and background non-negative")
        if self.em_gain is not None and self.em_gain < 1:
            raise ValueError("em_gain must be >= 1 (or None)")
        if not 1 <= self.bit_depth <= 16:
            raise ValueError("bit_depth must be in 1..16 (images are stored as uint16)")

    @property
    def max_adu(self) -> int:
        """Largest representable value, 2^bit_depth − 1."""
        return 2 ** self.bit_depth - 1

    @property
    def excess_noise_factor(self) -> float:
        """Variance multiplier of the EM register (2 for a high-gain EMCCD, 1 without EM)."""
        return 1.0 if self.em_gain is None else 2.0

    @property
    def adu_per_photon(self) -> float:
        """Mean ADU per photon reaching the detector: gain · QE · M."""
        return self.gain_adu_per_e * self.quantum_efficiency * (self.em_gain or 1.0)


def photobleach(t: float | np.ndarray, tau: float) -> float | np.ndarray:
    """Remaining fluorophore fraction ``exp(−t/τ)`` after ``t`` frames (τ in frames; inf = none)."""
    if tau <= 0:
        raise ValueError("tau must be positive")
    return np.exp(-np.asarray(t, dtype=np.float64) / tau) if math.isfinite(tau) else np.ones_like(t, dtype=np.float64)


def expose(photons_expected: np.ndarray, settings: CameraSettings, rng: np.random.Generator) -> np.ndarray:
    """Simulate one exposure: expected photons per voxel (float, ≥ 0) → noisy uint16 ADU.

    ``settings.background_photons`` is added to every voxel. The output has the shape of
    the input and includes the offset.
    """
    lam = np.asarray(photons_expected, dtype=np.float64) + settings.background_photons
    if lam.size and lam.min() < 0:
        raise ValueError("expected photon counts must be non-negative")
    # Binomial thinning of a Poisson process by the QE is again Poisson.
    electrons = rng.poisson(settings.quantum_efficiency * lam).astype(np.float64)
    if settings.em_gain is not None:
        # Gamma(n, M) models the EM register's gain distribution (shape 0 gives 0).
        electrons = rng.gamma(electrons, settings.em_gain)
    if settings.read_noise_e > 0:
        electrons += rng.normal(0.0, settings.read_noise_e, size=electrons.shape)
    adu = np.rint(electrons * settings.gain_adu_per_e + settings.offset_adu)
    return np.clip(adu, 0, settings.max_adu).astype(np.uint16)


def snr_cr(image: np.ndarray, fg_mask: np.ndarray) -> tuple[float, float]:
    """Cell Tracking Challenge image quality: ``SNR = |μ_fg − μ_bg| / σ_bg``, ``CR = μ_fg / μ_bg``.

    Foreground = ``fg_mask`` (the cells), background = every other voxel; the image is
    taken as recorded (camera offset included).
    """
    values = np.asarray(image, dtype=np.float64)
    fg = np.asarray(fg_mask, dtype=bool)
    if not fg.any() or fg.all():
        raise ValueError("need both foreground and background voxels")
    mu_fg, bg = values[fg].mean(), values[~fg]
    mu_bg, sigma_bg = bg.mean(), bg.std()
    return float(abs(mu_fg - mu_bg) / sigma_bg), float(mu_fg / mu_bg)


def solve_photon_budget(clean: np.ndarray, fg_mask: np.ndarray, target_snr: float, target_cr: float,
                        settings: CameraSettings) -> tuple[float, float]:
    """Photon levels that give a requested CTC SNR and CR on the recorded camera image.

    Args:
        clean: noise-free phantom image after the optics (e.g. the first frame), any scale;
            it is normalised internally to ``c = clean / max(clean)``.
        fg_mask: the cells (same shape).
        target_snr, target_cr: requested ``|μ_fg − μ_bg| / σ_bg`` and ``μ_fg / μ_bg`` (> 1).
        settings: the camera (its own ``background_photons`` is ignored here).

    Returns:
        ``(peak_photons, background_photons)``: expose ``peak_photons · c`` with
        ``background_photons`` per voxel (``dataclasses.replace(settings,
        background_photons=...)``) to get the targets in expectation.

    Derivation: with s = peak photons, b = background photons, a = ADU per photon,
    o = offset, mean levels c̄_fg, c̄_bg and spatial variance v of c over the background,
    ``μ_fg = a(s c̄_fg + b) + o``, ``μ_bg = a u + o`` with ``u = s c̄_bg + b`` and
    ``σ_bg² = κ u + ρ + a² s² v`` (κ = F · gain · a, ρ = gain² read² + 1/12).
    The CR equation is linear: ``u = s Δ/(CR − 1) − o/a`` with Δ = c̄_fg − c̄_bg. Putting
    it into ``SNR² σ_bg² = a² s² Δ²`` gives the quadratic
    ``a²(Δ² − SNR² v) s² − SNR² κ Δ/(CR − 1) s − SNR² (ρ − κ o/a) = 0``.
    The largest root with b ≥ 0 is returned (more photons, the offset matters less).
    """
    c = np.asarray(clean, dtype=np.float64)
    fg = np.asarray(fg_mask, dtype=bool)
    if c.max() <= 0 or not fg.any() or fg.all():
        raise ValueError("need a positive clean image with foreground and background voxels")
    c = c / c.max()
    levels = (c[fg].mean(), c[~fg].mean(), c[~fg].var())
    return _solve_levels(*levels, target_snr, target_cr, settings)


def _solve_levels(c_fg: float, c_bg: float, v_bg: float, snr: float, cr: float,
                  settings: CameraSettings) -> tuple[float, float]:
    """Solve the quadratic of :func:`solve_photon_budget` from the phantom's mean levels."""
    if snr <= 0 or cr <= 1:
        raise ValueError("need target SNR > 0 and target CR > 1")
    delta = c_fg - c_bg
    if delta <= 0:
        raise ValueError("the foreground is not brighter than the background in the clean image")
    a, o, g = settings.adu_per_photon, settings.offset_adu, settings.gain_adu_per_e
    kappa = settings.excess_noise_factor * g * (settings.em_gain or 1.0) * a
    rho = g * g * settings.read_noise_e ** 2 + 1.0 / 12.0
    qa = a * a * (delta * delta - snr * snr * v_bg)
    if qa <= 0:
        raise ValueError(f"SNR {snr} unreachable: background structure alone limits it to {delta / math.sqrt(v_bg):.3g}")
    qb = -snr * snr * kappa * delta / (cr - 1.0)
    qc = -snr * snr * (rho - kappa * o / a)
    disc = qb * qb - 4.0 * qa * qc
    roots = [] if disc < 0 else [(-qb + sign * math.sqrt(disc)) / (2.0 * qa) for sign in (1.0, -1.0)]
    for s in roots:
        b = s * delta / (cr - 1.0) - o / a - s * c_bg
        if s > 0 and b >= -1e-9 * max(s, 1.0):
            _warn_if_saturated(s, max(b, 0.0), settings)
            return float(s), float(max(b, 0.0))
    raise ValueError(f"SNR {snr} with CR {cr} is not reachable with offset {o} ADU and this noise: "
                     "lower the offset or gain, raise the read noise or the SNR, or lower the CR")


def _warn_if_saturated(peak: float, background: float, settings: CameraSettings) -> None:
    """Warn when the expected brightest voxel plus 3 σ exceeds the ADC range."""
    a, g = settings.adu_per_photon, settings.gain_adu_per_e
    lam = peak + background
    sd = math.sqrt(settings.excess_noise_factor * g * (settings.em_gain or 1.0) * a * lam + (g * settings.read_noise_e) ** 2)
    if a * lam + settings.offset_adu + 3 * sd > settings.max_adu:
        warnings.warn("the brightest voxels will saturate the camera; clipping lowers the achieved SNR/CR",
                      stacklevel=3)
