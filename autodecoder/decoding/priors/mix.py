"""``mix``: mixing of nearest learned codes, blurred segments in the codes' PCA subspace (see
:mod:`autodecoder.decoding.priors`)."""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.distance import cdist
from scipy.special import log_ndtr, logsumexp

from autodecoder.decoding.latent import Subspace, pca_subspace
from autodecoder.decoding.priors.base import LOG_2PI, SubspacePrior, choose_bandwidth
from autodecoder.experiment.errors import UserError

#: Nearest learned codes each code is mixed with (fewer when there are fewer codes).
MIX_NEIGHBOURS = 4


def _log_segment_density(x: np.ndarray, starts: np.ndarray, ends: np.ndarray, sigma: float) -> np.ndarray:
    """log p of each point x (m, d) under each blurred segment (K pairs): the uniform distribution on the
    segment from ``starts[k]`` to ``ends[k]`` (K, d) convolved with N(0, σ²·I) → (m, K).

    With ``e`` the unit direction and ``L`` the length, ``t = (x − a)·e`` and ``r²`` the squared distance
    from the segment's line: ``p = N(r; σ) in d − 1 dimensions × (Φ(t/σ) − Φ((t − L)/σ)) / L``, and a
    plain N(a, σ²·I) for a segment of length 0.
    """
    d = x.shape[1]
    chunk = max(1, int(4e6) // max(len(starts) * d, 1))  # rows of x at a time: (chunk, K, d) stays small
    if len(x) > chunk:
        return np.concatenate([_log_segment_density(x[i:i + chunk], starts, ends, sigma)
                               for i in range(0, len(x), chunk)])
    vec = ends - starts
    length = np.linalg.norm(vec, axis=1)
    e = np.where(length[:, None] > 0, vec / np.maximum(length, 1e-300)[:, None], 0.0)
    rel = x[:, None, :] - starts[None]                       # (m, K, d)
    t = np.einsum("mkd,kd->mk", rel, e)
    r2 = np.maximum((rel ** 2).sum(-1) - t ** 2, 0.0)
    point = -0.5 * (rel ** 2).sum(-1) / sigma ** 2 - d * math.log(sigma) - 0.5 * d * LOG_2PI
    hi, lo = t / sigma, (t - length[None]) / sigma           # Φ(hi) − Φ(lo), hi ≥ lo
    # log(Φ(hi) − Φ(lo)) without cancellation: on the side of the smaller tails
    upper = lo > 0
    a = np.where(upper, log_ndtr(-lo), log_ndtr(hi))
    b = np.where(upper, log_ndtr(-hi), log_ndtr(lo))
    log_diff = a + np.log1p(-np.exp(np.minimum(b - a, 0.0)) + 1e-300)
    along = -0.5 * r2 / sigma ** 2 - (d - 1) * math.log(sigma) - 0.5 * (d - 1) * LOG_2PI \
        + log_diff - np.log(np.maximum(length, 1e-300))[None]
    return np.where(length[None] > 0, along, point)


class MixPrior(SubspacePrior):
    """Mixing of nearest learned codes: blurred segments towards each code's neighbours
    (:mod:`autodecoder.decoding.priors`)."""

    name = "mix"
    format = "autodecoder-latent-mix/1"
    fields = {"points": np.asarray, "pairs": np.asarray, "sigma": float}

    def __init__(self, space: Subspace, points: np.ndarray, pairs: np.ndarray, sigma: float, selection: str,
                 source: str = "") -> None:
        self.space, self.points, self.pairs, self.sigma = space, points, pairs, sigma
        self.selection, self.source = selection, source

    @property
    def neighbours(self) -> int:
        return len(self.pairs) // len(self.points)

    @classmethod
    def fit(cls, codes, pca=None, validation=None, seed=0, source=""):
        """Each code paired with its nearest codes; ``σ`` by leave-one-out (or validation) log-likelihood."""
        space = pca_subspace(codes, pca, source)
        u = space.project(codes)
        n, d = u.shape
        k = min(MIX_NEIGHBOURS, n - 2)
        if k < 1:
            raise UserError(f"--prior mix: needs at least 3 learned codes, got {n}")
        d2 = cdist(u, u, "sqeuclidean")
        np.fill_diagonal(d2, np.inf)
        near = np.argsort(d2, axis=1, kind="stable")[:, :k]
        pairs = np.stack([np.repeat(np.arange(n), k), near.reshape(-1)], 1)  # (n·k, 2): code i, neighbour m
        starts, mids = u[pairs[:, 0]], (u[pairs[:, 0]] + u[pairs[:, 1]]) / 2
        unit = math.sqrt(float(np.mean(space.scales ** 2)))
        if validation is None:
            held, how = u, "leave-one-out"
            # code j is left out with every segment that starts or ends at it
            keep = (pairs[None, :, 0] != np.arange(n)[:, None]) & (pairs[None, :, 1] != np.arange(n)[:, None])
        else:
            held, how = space.project(validation), "validation"
            keep = np.ones((len(held), len(pairs)), bool)

        def loss(log_h: float) -> float:
            logp = np.where(keep, _log_segment_density(held, starts, mids, math.exp(log_h) * unit), -np.inf)
            return -float((logsumexp(logp, axis=1) - np.log(keep.sum(1))).mean())

        h, value = choose_bandwidth(loss)
        return cls(space, u, pairs, h * unit,
                   f"{k} neighbours, noise σ = {h:.4g} × the codes' rms spread per axis by {how} log-likelihood "
                   f"({-value:.4g})", source)

    def draw(self, n, temperature=1.0, rng=None, center=None):
        """A pair (code, neighbour) picked uniformly, ``λ ~ U(0, τ/2)`` of the way along it, plus ``τ·σ·z``."""
        self._check_draw(temperature, center)
        rng = rng if rng is not None else np.random.default_rng()
        which = self.pairs[rng.integers(len(self.pairs), size=n)]
        share = rng.uniform(0.0, 0.5, size=n) * temperature
        z = rng.standard_normal((n, self.points.shape[1]))
        a, b = self.points[which[:, 0]], self.points[which[:, 1]]
        return self.space.lift(a + share[:, None] * (b - a) + temperature * self.sigma * z)

    def log_density(self, codes):
        u = self.space.project(codes)
        a = self.points[self.pairs[:, 0]]
        mids = (a + self.points[self.pairs[:, 1]]) / 2
        return logsumexp(_log_segment_density(u, a, mids, self.sigma), axis=1) - math.log(len(self.pairs))

    def describe(self):
        return (f"mixing of nearest codes on {len(self.points)} codes of length {self.space.mean.shape[0]} in their "
                f"{self.points.shape[1]}-dimensional PCA subspace: each code towards one of its {self.selection} "
                f"(up to the midpoint, plus noise)")

    def attrs(self):
        return {**super().attrs(), "prior_noise": self.sigma, "prior_neighbours": self.neighbours,
                "prior_subspace": self.points.shape[1]}
