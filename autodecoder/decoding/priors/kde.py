"""``kde``: a Gaussian kernel density on the learned codes in their PCA subspace (see
:mod:`autodecoder.decoding.priors`); the default of ``test.py -t sample``."""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from autodecoder.decoding.latent import Subspace, pca_subspace
from autodecoder.decoding.priors.base import LOG_2PI, SubspacePrior, choose_bandwidth


class KDEPrior(SubspacePrior):
    """A Gaussian kernel density in the PCA subspace (see :mod:`autodecoder.decoding.priors`)."""

    name = "kde"
    format = "autodecoder-latent-kde/1"
    fields = {"points": np.asarray, "bandwidth": float}

    def __init__(self, space: Subspace, points: np.ndarray, bandwidth: float, selection: str,
                 source: str = "") -> None:
        self.space, self.points, self.bandwidth, self.selection, self.source = space, points, bandwidth, \
            selection, source

    @classmethod
    def fit(cls, codes, pca=None, validation=None, seed=0, source=""):
        """``h`` maximising the mean leave-one-out (or validation) log-likelihood, over 1e-3 … 10 (log scale)."""
        space = pca_subspace(codes, pca, source)
        u = space.project(codes) / space.scales  # whitened: the kernel is h²·I here
        held = None if validation is None else space.project(validation) / space.scales
        # squared distances once; a code's distance to itself is left out (leave-one-out)
        d2 = cdist(u, u, "sqeuclidean") + np.diag(np.full(len(u), np.inf)) if held is None else cdist(held, u, "sqeuclidean")
        others = len(u) - (1 if held is None else 0)

        def loss(log_h: float) -> float:
            return -float(_kernel_log_mean(d2, math.exp(log_h), u.shape[1], others).mean())

        how = "leave-one-out" if held is None else "validation"
        h, value = choose_bandwidth(loss)
        return cls(space, u * space.scales, h, f"bandwidth {h:.4g} by {how} log-likelihood ({-value:.4g})", source)

    def draw(self, n, temperature=1.0, rng=None, center=None):
        """A learned code picked uniformly, plus ``τ·h·scales·z``: ``τ = 0`` copies learned codes."""
        self._check_draw(temperature, center)
        rng = rng if rng is not None else np.random.default_rng()
        which = rng.integers(len(self.points), size=n)
        z = rng.standard_normal((n, self.points.shape[1]))
        return self.space.lift(self.points[which] + temperature * self.bandwidth * self.space.scales * z)

    def log_density(self, codes):
        u = self.space.project(codes) / self.space.scales
        d2 = cdist(u, self.points / self.space.scales, "sqeuclidean")
        return _kernel_log_mean(d2, self.bandwidth, u.shape[1], len(self.points)) - np.log(self.space.scales).sum()

    def describe(self):
        return (f"kernel density on {len(self.points)} codes of length {self.space.mean.shape[0]} in their "
                f"{self.points.shape[1]}-dimensional PCA subspace: {self.selection} (kernel std = bandwidth × "
                f"the codes' std per axis)")

    def attrs(self):
        return {**super().attrs(), "prior_bandwidth": self.bandwidth, "prior_subspace": self.points.shape[1]}


def _kernel_log_mean(d2: np.ndarray, h: float, d: int, count: int) -> np.ndarray:
    """log of the mean over ``count`` centres of N(0, h²·I_d) at squared distances d2 (m, n) → (m,)."""
    return logsumexp(-0.5 * d2 / h ** 2, axis=1) - math.log(count) - d * math.log(h) - 0.5 * d * LOG_2PI
