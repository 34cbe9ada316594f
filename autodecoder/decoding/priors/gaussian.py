"""``gaussian``: the Gaussian of :mod:`autodecoder.decoding.latent` behind the common interface."""

from __future__ import annotations

import numpy as np

from autodecoder.decoding import latent
from autodecoder.decoding.priors.base import LOG_2PI, Prior


class GaussianPrior(Prior):
    """The Gaussian of :mod:`autodecoder.decoding.latent`, behind the common interface."""

    name = "gaussian"
    format = latent.FORMAT

    def __init__(self, gaussian: latent.LatentGaussian) -> None:
        self.gaussian = gaussian

    @classmethod
    def fit(cls, codes, pca=None, validation=None, seed=0, source=""):
        return cls(latent.fit_gaussian(codes, pca=pca, source=source))

    def draw(self, n, temperature=1.0, rng=None, center=None):
        return self.gaussian.draw(n, temperature, rng, center)

    def log_density(self, codes):
        # along the factor's directions with a positive variance (all C, or the K of --pca)
        g = self.gaussian
        keep = g.eigenvalues > 1e-12 * max(float(g.eigenvalues.max()), 1e-300)
        w = g.eigenvalues[keep]
        y = (np.asarray(codes, np.float64).reshape(-1, g.dim) - g.mean) @ (g.factor[:, keep] / np.sqrt(w))
        return -0.5 * ((y ** 2).sum(1) + np.log(w).sum() + len(w) * LOG_2PI)

    def save(self, path):
        return self.gaussian.save(path)

    @classmethod
    def _from_npz(cls, z, path):
        return cls(latent.LatentGaussian.load(path))

    def describe(self):
        return latent.describe(self.gaussian)

    def attrs(self):
        g = self.gaussian
        return {**super().attrs(), "latent_method": g.method, "latent_components": g.components,
                "latent_shrinkage": float(g.shrinkage)}
