"""``gmm``: a Gaussian mixture in the codes' PCA subspace, fitted by EM (see :mod:`autodecoder.decoding.priors`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from autodecoder.decoding.latent import Subspace, pca_subspace
from autodecoder.decoding.priors.base import LOG_2PI, SubspacePrior

MAX_COMPONENTS = 6
STRENGTHS = (0.25, 1.0, 4.0)  # ν / d tried when validation codes choose it; 1.0 otherwise


def _gauss_logpdf(y: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """log N(y_i; means_k, covs_k) for y (m, d), means (K, d), covs (K, d, d) → (m, K)."""
    out = np.empty((len(y), len(means)))
    for k in range(len(means)):
        chol = np.linalg.cholesky(covs[k])
        z = solve_triangular(chol, (y - means[k]).T, lower=True)
        out[:, k] = -0.5 * (z ** 2).sum(0) - np.log(np.diag(chol)).sum() - 0.5 * y.shape[1] * LOG_2PI
    return out


def _m_step(y: np.ndarray, resp: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (K,), means (K, d) and regularised covariances (K, d, d) from responsibilities (n, K).

    ``Σ_k = (N_k·S_k + ν·T_k)/(N_k + ν)``, ``T_k`` the diagonal of ``S_k`` (with one pseudo-code of the
    pooled within-component variances, so that a component of one code still has a spread): shrinking
    towards its own diagonal keeps each component's variances, and only damps the correlations that
    few codes in many dimensions cannot estimate.
    """
    n, d = y.shape
    nk = resp.sum(0) + 1e-12
    means = resp.T @ y / nk[:, None]
    scatter = np.stack([(resp[:, k, None] * (y - means[k])).T @ (y - means[k]) for k in range(len(nk))])
    variances = np.einsum("kii->ki", scatter)  # N_k·diag(S_k)
    pooled = variances.sum(0) / n
    floor = 1e-9 * float(np.mean((y - y.mean(0)) ** 2)) + 1e-300  # codes coinciding with their means
    target = (variances + pooled) / (nk + 1)[:, None]
    covs = scatter + strength * np.einsum("ki,ij->kij", target, np.eye(d))
    return nk / n, means, covs / (nk + strength)[:, None, None] + floor * np.eye(d)


def _em(y: np.ndarray, k: int, strength: float, rng: np.random.Generator, restarts: int = 2,
        iterations: int = 200) -> tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Best of ``restarts`` EM runs from k-means++ seeds: (total log-likelihood, (weights, means, covs))."""
    best: tuple[float, Any] = (-math.inf, None)
    for _ in range(restarts if k > 1 else 1):
        centres = [y[rng.integers(len(y))]]
        for _ in range(k - 1):  # k-means++: far codes are likelier seeds
            d2 = np.min(((y[:, None] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
            centres.append(y[rng.choice(len(y), p=d2 / d2.sum())] if d2.sum() > 0 else y[rng.integers(len(y))])
        resp = np.eye(k)[np.argmin(((y[:, None] - np.array(centres)[None]) ** 2).sum(-1), axis=1)]
        previous = -math.inf
        for _ in range(iterations):
            params = _m_step(y, resp, strength)
            logp = _gauss_logpdf(y, params[1], params[2]) + np.log(params[0] + 1e-300)
            total = logsumexp(logp, axis=1)
            resp = np.exp(logp - total[:, None])
            ll = float(total.sum())
            if ll - previous < 1e-5 * len(y):  # converged: < 1e-5 nats per code
                break
            previous = ll
        if ll > best[0]:
            best = (ll, params)
    return best


class GMMPrior(SubspacePrior):
    """A Gaussian mixture in the PCA subspace (see :mod:`autodecoder.decoding.priors`)."""

    name = "gmm"
    format = "autodecoder-latent-gmm/1"
    fields = {"weights": np.asarray, "means": np.asarray, "covariances": np.asarray, "strength": float,
              "n_codes": int}

    def __init__(self, space: Subspace, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
                 strength: float, n_codes: int, selection: str, source: str = "") -> None:
        self.space, self.weights, self.means, self.covariances = space, weights, means, covariances
        self.strength, self.n_codes, self.selection, self.source = strength, n_codes, selection, source

    @classmethod
    def fit(cls, codes, pca=None, validation=None, seed=0, source=""):
        """EM for 1 … :data:`MAX_COMPONENTS` components (at most one per 3 codes); ``ν = d``, or chosen
        with the components among :data:`STRENGTHS` × d by the validation codes' mean log-likelihood."""
        space = pca_subspace(codes, pca, source)
        y, d, n = space.project(codes), len(space.scales), len(codes)
        held = None if validation is None else space.project(validation)
        rng = np.random.default_rng(seed)
        how = "BIC" if held is None else "validation log-likelihood"
        best: tuple[float, Any] = (-math.inf, None)
        for k in range(1, min(MAX_COMPONENTS, max(1, n // 3)) + 1):
            for strength in (STRENGTHS if held is not None else (1.0,)):
                ll, (w, m, c) = _em(y, k, strength * d, rng)
                if held is None:  # BIC, counting full covariances: (k − 1) + k·d + k·d(d + 1)/2 parameters
                    score = ll - 0.5 * (k - 1 + k * d + k * d * (d + 1) / 2) * math.log(n)
                else:
                    score = float(logsumexp(_gauss_logpdf(held, m, c) + np.log(w), axis=1).mean())
                if score > best[0]:
                    best = (score, (w, m, c, strength * d, f"{k} components by {how} ({score:.4g})"))
        w, m, c, strength, selection = best[1]
        return cls(space, w, m, c, strength, n, selection, source)

    def draw(self, n, temperature=1.0, rng=None, center=None):
        """Component ``k`` with probability ``w_k``, then ``m_k + τ·L_k·z`` (``L_k·L_kᵀ = Σ_k``), lifted."""
        self._check_draw(temperature, center)
        rng = rng if rng is not None else np.random.default_rng()
        which = rng.choice(len(self.weights), size=n, p=self.weights / self.weights.sum())
        z = rng.standard_normal((n, self.means.shape[1]))
        chol = np.linalg.cholesky(self.covariances)
        return self.space.lift(self.means[which] + temperature * np.einsum("nij,nj->ni", chol[which], z))

    def log_density(self, codes):
        y = self.space.project(codes)
        return logsumexp(_gauss_logpdf(y, self.means, self.covariances) + np.log(self.weights), axis=1)

    def describe(self):
        return (f"Gaussian mixture fitted to {self.n_codes} codes of length {self.space.mean.shape[0]} in their "
                f"{self.means.shape[1]}-dimensional PCA subspace: {self.selection}, weights "
                f"{' '.join(f'{x:.2f}' for x in self.weights)}, covariances shrunk with {self.strength:.3g} "
                f"pseudo-codes")

    def attrs(self):
        return {**super().attrs(), "prior_components": len(self.weights), "prior_subspace": self.means.shape[1]}
