"""Priors over the learned codes for ``test.py -t sample --prior NAME``, and uniform orientations.

One interface (:class:`Prior`): ``fit`` to the code table (n, C), ``draw(n, temperature, rng)``,
``log_density`` (to choose settings on validation codes), ``save``/``load`` (``.npz``, atomic,
no pickles), ``name`` and a one-line ``describe``. The priors (:data:`PRIORS`):

* ``gaussian``: :class:`~autodecoder.decoding.latent.LatentGaussian`, unchanged (same fit, draws and
  file). ``--pca K`` keeps K principal components; ``--around CODE`` centres it on a code.
* ``gmm``: a Gaussian mixture fitted by EM. Few codes in many dimensions (6–60 codes of length 192)
  is the normal case, so it works in the PCA subspace of the codes (the ``min(n − 1, C)`` directions
  in which they vary at all, or the ``--pca K`` leading ones): outside it the codes carry no
  information. Each component's covariance is shrunk towards its own diagonal with a weight of
  ``ν`` pseudo-codes, ``Σ_k = (N_k·S_k + ν·diag S_k)/(N_k + ν)`` (:func:`_m_step`): positive
  definite even when a component holds fewer codes than dimensions, its variances kept. The number
  of components (and ``ν``) is chosen by the validation codes' mean log-likelihood when they are
  given, else by BIC (which, counting full covariances, keeps one component when codes are few).
* ``kde``: a Gaussian kernel density in the PCA subspace, its kernel the codes' covariance there
  (diagonal in the PCA basis) times ``h²``; ``h`` maximises the leave-one-out log-likelihood of the
  codes, or the validation codes' log-likelihood when given. A draw picks a learned code at random
  and adds kernel noise. The default of ``test.py -t sample`` (:data:`autodecoder.decoding.options.DEFAULT_PRIOR`).
* ``mix``: mixing of nearest learned codes. A draw picks a learned code ``c_i`` at random and one of
  its ``k`` = :data:`MIX_NEIGHBOURS` nearest learned codes ``c_m`` (Euclidean, in the PCA subspace,
  not whitened: whitening would blow the directions in which the codes hardly vary up to the size
  of the others), moves a uniform share ``λ ~ U(0, ½)`` of the way from ``c_i`` towards ``c_m``
  (up to the midpoint; the pair seen from ``c_m`` covers the other half), and adds isotropic
  Gaussian noise ``σ·z``. New codes thus lie between neighbouring learned cells, never beyond the
  learned codes (a kernel density spreads around each code in every direction instead, also
  outwards and off the codes' span). Its density is closed-form: per pair, a Gaussian across the
  segment times a difference of normal CDFs along it. ``σ = h·s``, ``s`` the codes' root mean
  variance per axis, ``h`` maximising the leave-one-out log-likelihood of the codes (segments that
  touch the code left out are left out), or the validation codes' log-likelihood.

Temperature ``τ`` scales the spread around each centre: the Gaussian's mean (or ``--around``), each
component's mean, each learned code. ``τ = 0`` therefore gives the mean code (gaussian), the
component means (gmm), and **copies of the learned codes** (kde and mix: their projections on the
subspace, the codes themselves without ``--pca``); ``τ = 1`` the fitted distribution. For mix ``τ``
scales both the noise and the share of the way towards the neighbour (``λ ~ U(0, τ/2)``: at
``τ = 2`` a draw may reach the neighbour itself).
``--around`` has a meaning for the Gaussian only: refused for the others, and without ``--prior`` it
selects the Gaussian (:func:`autodecoder.decoding.options.check_options`).

``log_density`` of gmm, kde and mix is that of the codes' projection on the prior's subspace: it compares
settings of one prior on one subspace, not densities of different dimension. New cells' orientations:
:func:`~autodecoder.decoding.latent.uniform_rotations` (uniform on SO(3)).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
from scipy.linalg import solve_triangular
from scipy.optimize import minimize_scalar
from scipy.spatial.distance import cdist
from scipy.special import log_ndtr, logsumexp

from autodecoder.decoding import latent
from autodecoder.decoding.latent import Subspace, pca_subspace
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import atomic_path

MAX_COMPONENTS = 6
#: ``mix``: nearest learned codes each code is mixed with (fewer when there are fewer codes).
MIX_NEIGHBOURS = 4
STRENGTHS = (0.25, 1.0, 4.0)  # ν / d tried when validation codes choose it; 1.0 otherwise
LOG_2PI = math.log(2 * math.pi)


def _save(path: str | Path, **arrays: Any) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file handle: np.savez would append ".npz" to the temporary name
            np.savez(fh, **arrays)
    return path


class Prior:
    """A distribution over codes of length ``C``; see the module's docstring."""

    name: ClassVar[str] = ""
    format: ClassVar[str] = ""

    @classmethod
    def fit(cls, codes: np.ndarray, pca: int | None = None, validation: np.ndarray | None = None,
            seed: int = 0, source: str = "") -> "Prior":
        raise NotImplementedError

    def draw(self, n: int, temperature: float = 1.0, rng: np.random.Generator | None = None,
             center: np.ndarray | None = None) -> np.ndarray:
        """``n`` codes, float32 (n, C); ``center`` only for the Gaussian (``--around``)."""
        raise NotImplementedError

    def _check_draw(self, temperature: float, center: np.ndarray | None) -> None:
        """The checks of every draw but the Gaussian's, which has a centre (``--around``)."""
        latent.check_temperature(temperature)
        if center is not None:
            raise UserError(f"--around: only used by --prior gaussian, not by --prior {self.name}")

    def log_density(self, codes: np.ndarray) -> np.ndarray:
        """Log density (nats) of each code (m, C) → float64 (m,)."""
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write the prior as ``.npz`` (atomically); :meth:`load` reads it back."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line about the fitted prior, for logs and the files' attributes."""
        raise NotImplementedError

    @classmethod
    def _from_npz(cls, z: Any) -> "Prior":
        raise NotImplementedError

    def attrs(self) -> dict[str, Any]:
        """What the sampled files record about the prior (scalars and strings)."""
        return {"prior": self.name, "prior_description": self.describe()}

    @staticmethod
    def load(path: str | Path) -> "Prior":
        """The prior saved in ``path``, whichever it is."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                fmt = str(z["format"]) if "format" in z.files else ""
                if fmt == latent.FORMAT:
                    return GaussianPrior(latent.LatentGaussian.load(path))
                cls = next((c for c in PRIORS.values() if c.format == fmt), None)
                if cls is None:
                    raise UserError(f"{path}: not a latent distribution written by this project")
                return cls._from_npz(z)
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{path}: cannot read the latent distribution ({e})") from None


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

    def describe(self):
        return latent.describe(self.gaussian)

    def attrs(self):
        g = self.gaussian
        return {**super().attrs(), "latent_method": g.method, "latent_components": g.components,
                "latent_shrinkage": float(g.shrinkage)}


class SubspacePrior(Prior):
    """A prior in the PCA subspace of the codes (gmm, kde, mix). Its constructor takes the subspace, its
    own :attr:`fields` in order, the line saying how its settings were chosen, and the codes' source;
    the file holds exactly those (the fields read back with the given types)."""

    fields: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    space: Subspace
    selection: str
    source: str

    def save(self, path):
        return _save(path, format=self.format, **vars(self.space), **{k: getattr(self, k) for k in self.fields},
                     selection=self.selection, source=self.source)

    @classmethod
    def _from_npz(cls, z: Any) -> "SubspacePrior":
        return cls(Subspace(z["mean"], z["basis"], z["scales"]), *(read(z[k]) for k, read in cls.fields.items()),
                   str(z["selection"]), str(z["source"]))


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
    """A Gaussian mixture in the PCA subspace (see the module's docstring)."""

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


class KDEPrior(SubspacePrior):
    """A Gaussian kernel density in the PCA subspace (see the module's docstring)."""

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
        h, value = _bandwidth(loss)
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


def _bandwidth(loss: Callable[[float], float]) -> tuple[float, float]:
    """``(h, loss(log h))`` minimising ``loss`` over log h in [log 1e-3, log 10]: a grid, then a bounded search."""
    grid = np.linspace(math.log(1e-3), math.log(10.0), 61)
    values = [loss(g) for g in grid]
    i = int(np.argmin(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    log_h = float(res.x) if res.fun <= values[i] else float(grid[i])
    return math.exp(log_h), float(loss(log_h))


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
    """Mixing of nearest learned codes: blurred segments towards each code's neighbours (module docstring)."""

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

        h, value = _bandwidth(loss)
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


#: The priors of ``test.py -t sample --prior NAME``.
PRIORS: dict[str, type[Prior]] = {"gaussian": GaussianPrior, "gmm": GMMPrior, "kde": KDEPrior, "mix": MixPrior}


def fit_prior(name: str, codes: np.ndarray, pca: int | None = None, validation: np.ndarray | None = None,
              seed: int = 0, source: str = "") -> Prior:
    """Fit the prior ``name`` to ``codes`` (n, C); ``validation`` codes (m, C) choose its settings when given."""
    if name not in PRIORS:
        raise UserError(f"--prior {name}: expected one of {', '.join(PRIORS)}")
    return PRIORS[name].fit(codes, pca=pca, validation=validation, seed=seed, source=source)
