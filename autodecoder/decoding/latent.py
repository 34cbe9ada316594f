"""The latent space of a trained model: a Gaussian fitted to the learned codes, and paths between codes.

Used by ``test.py -t sample`` (new codes from the learned distribution; the other priors, in
:mod:`autodecoder.decoding.priors`, work in the codes' PCA subspace, :func:`pca_subspace`),
``-t interpolate`` (sequences along the path between two learned codes and
their rotations) and ``-t fit`` (its start, the mean code).

The fitted distribution (:class:`LatentGaussian`)
    * ``mean``: the mean of the learned codes.
    * ``covariance``, by one of three methods:

      - ``"sample"``: the sample covariance (divisor ``n − 1``); used when there
        are more codes than dimensions (``n > CodeLength``), where it is
        positive definite for codes in general position.
      - ``"ledoit-wolf"``: with ``n ≤ CodeLength`` codes the sample covariance is
        singular (rank ``n − 1``); it is shrunk towards ``μ·I`` (``μ`` the mean
        variance per dimension), ``Σ = (1 − α)·S + α·μ·I``, with the
        Ledoit–Wolf (2004) choice of ``α`` (``S`` the maximum-likelihood
        covariance, divisor ``n``, as in scikit-learn's ``LedoitWolf``). The
        result is positive definite whenever ``α > 0`` and the codes are not
        all equal.
      - ``"pca"``: the ``k`` leading principal directions of the sample
        covariance with their variances (rank ``k``, ``1 ≤ k ≤ min(n − 1,
        CodeLength)``); draws stay in the span of the learned codes' main
        variations.

    * Drawing at temperature ``τ``: ``code = centre + τ·L·z``, ``z ~ N(0, I)``,
      ``L·Lᵀ = Σ``; ``τ = 0`` gives the centre (the mean code, or the code given
      with ``--around``) exactly, ``τ = 1`` the fitted spread.
    * Saved next to the code table it was fitted to, as a small ``.npz``
      (:func:`autodecoder.experiment.workspace.latent_prior_file`).

Paths between codes (:func:`interpolate_codes`): linear, or spherical (the
great-circle arc of slerp, which also interpolates the norm linearly in angle);
both end exactly at the two codes. Rotations (:func:`interpolate_angles`):
the geodesic on SO(3) between the two rotation matrices (``roma.rotmat_slerp``,
shortest arc), converted back to intrinsic XYZ Euler angles; the two ends are
the given angles themselves, so the ends decode exactly as ``reconstruct`` does.
New cells' orientations (:func:`uniform_rotations`): uniform on SO(3), i.e. the rotation's angle
has density (1 − cos θ)/π on [0, π] and any rotated axis is uniform on the sphere (uniform
Euler angles are not: they favour some axes), as intrinsic XYZ Euler angles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import roma
import torch

from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import atomic_path

METHODS = ("sample", "ledoit-wolf", "pca")
ORIENTATION = "uniform on SO(3) (normalised Gaussian quaternions), as intrinsic XYZ Euler angles"
PATHS = ("linear", "slerp")
FORMAT = "autodecoder-latent-gaussian/1"


def check_temperature(temperature: float) -> None:
    """Refuse a temperature that is negative or not finite (every prior's draws)."""
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise UserError(f"--temperature {temperature}: expected a number >= 0")


@dataclass
class LatentGaussian:
    """A Gaussian over codes: ``N(mean, covariance)`` with a factor ``L`` (``L·Lᵀ = covariance``).

    Attributes:
        mean: float64 (C,).
        covariance: float64 (C, C).
        factor: float64 (C, k): ``k = C`` for a full covariance, the number of components for PCA.
        method: one of :data:`METHODS`.
        shrinkage: the ``α`` of Ledoit–Wolf (0 for the other methods).
        n_codes: how many codes it was fitted to.
        eigenvalues: float64 (k,), variances along the columns of the factor's directions, descending.
        source: what it was fitted to (a file name, for the record).
    """

    mean: np.ndarray
    covariance: np.ndarray
    factor: np.ndarray
    method: str
    shrinkage: float
    n_codes: int
    eigenvalues: np.ndarray
    source: str = ""

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def components(self) -> int:
        return int(self.factor.shape[1])

    def draw(self, n: int, temperature: float = 1.0, rng: np.random.Generator | None = None,
             center: np.ndarray | None = None) -> np.ndarray:
        """``n`` codes, float32 (n, C): ``center + temperature·L·z``.

        ``center`` defaults to the mean. Temperature 0 returns the centre exactly
        (no draw is made); a negative temperature is an error.
        """
        check_temperature(temperature)
        c = self.mean if center is None else np.asarray(center, dtype=np.float64).reshape(-1)
        if c.shape != self.mean.shape:
            raise UserError(f"code of length {c.shape[0]} but the model's codes have length {self.dim}")
        if temperature == 0:
            return np.repeat(c.astype(np.float32)[None], n, axis=0)
        rng = rng if rng is not None else np.random.default_rng()
        z = rng.standard_normal((n, self.components))
        return (c[None] + temperature * (z @ self.factor.T)).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """Write the distribution as ``.npz`` (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:  # a file handle: np.savez would append ".npz" to the temporary name
                np.savez(fh, format=FORMAT, mean=self.mean, covariance=self.covariance, factor=self.factor,
                         method=self.method, shrinkage=self.shrinkage, n_codes=self.n_codes,
                         eigenvalues=self.eigenvalues, source=self.source)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "LatentGaussian":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z.get("format", "")) != FORMAT:
                    raise UserError(f"{path}: not a latent distribution written by this project")
                return cls(z["mean"], z["covariance"], z["factor"], str(z["method"]), float(z["shrinkage"]),
                           int(z["n_codes"]), z["eigenvalues"], str(z["source"]))
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{path}: cannot read the latent distribution ({e})") from None


def ledoit_wolf(codes: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit–Wolf shrunk covariance of ``codes`` (n, p) and its shrinkage ``α`` in [0, 1].

    ``S`` is the maximum-likelihood covariance (divisor ``n``), ``μ = trace(S)/p``,
    ``Σ = (1 − α)·S + α·μ·I`` with ``α = min(β², δ²)/δ²``, ``δ² = ‖S − μI‖²_F / p``,
    ``β² = (1/n²)·Σ_k ‖x_k x_kᵀ − S‖²_F / p`` (``x_k`` the centred codes).
    Equal to scikit-learn's ``LedoitWolf().fit(codes).covariance_``.
    """
    x = np.asarray(codes, dtype=np.float64)
    n, p = x.shape
    xc = x - x.mean(axis=0)
    s = xc.T @ xc / n
    mu = np.trace(s) / p
    delta = ((s - mu * np.eye(p)) ** 2).sum() / p
    # Σ_k ‖x_k x_kᵀ − S‖²_F = Σ_k ‖x_k‖⁴ − n‖S‖²_F  (since Σ_k x_k x_kᵀ = nS)
    beta = ((np.einsum("ij,ij->i", xc, xc) ** 2).sum() - n * (s ** 2).sum()) / (n * n * p)
    beta = min(max(beta, 0.0), delta)
    alpha = 0.0 if delta == 0 else beta / delta
    return (1 - alpha) * s + alpha * mu * np.eye(p), float(alpha)


def fit_gaussian(codes: np.ndarray, pca: int | None = None, method: str | None = None,
                 source: str = "") -> LatentGaussian:
    """Fit a :class:`LatentGaussian` to the learned ``codes`` (n, C).

    Args:
        codes: the code table (one row per learned sequence).
        pca: keep this many principal components (method ``"pca"``).
        method: force ``"sample"`` or ``"ledoit-wolf"``; default: ``"sample"``
            when ``n > C``, else ``"ledoit-wolf"``.
        source: recorded in the saved file.
    """
    x = np.asarray(codes, dtype=np.float64)
    if x.ndim != 2:
        raise UserError(f"codes: expected a (rows, CodeLength) table, got shape {x.shape}")
    n, p = x.shape
    if n < 2:
        raise UserError(f"{source or 'codes'}: {n} learned code; a distribution needs at least 2")
    if not np.isfinite(x).all():
        raise UserError(f"{source or 'codes'}: the learned codes hold NaN or infinite values")
    mean = x.mean(axis=0)
    xc = x - mean
    if float(np.abs(xc).max()) == 0.0:
        raise UserError(f"{source or 'codes'}: all {n} learned codes are equal; they have no spread to fit")
    shrink = 0.0
    if pca is not None:
        rank = min(n - 1, p)
        if not (1 <= pca <= rank):
            raise UserError(f"--pca {pca}: expected 1 … {rank} components ({n} codes of length {p} span at most "
                            f"{rank} directions)")
        s = xc.T @ xc / (n - 1)
        w, v = np.linalg.eigh(s)
        order = np.argsort(w)[::-1][:pca]
        w, v = np.clip(w[order], 0.0, None), v[:, order]
        factor = v * np.sqrt(w)[None]
        return LatentGaussian(mean, factor @ factor.T, factor, "pca", 0.0, n, w, source)
    method = method or ("sample" if n > p else "ledoit-wolf")
    if method == "sample":
        cov = xc.T @ xc / (n - 1)
    elif method == "ledoit-wolf":
        cov, shrink = ledoit_wolf(x)
    else:
        raise ValueError(f"method must be one of {METHODS}")
    cov = (cov + cov.T) / 2
    w, v = np.linalg.eigh(cov)
    order = np.argsort(w)[::-1]
    w, v = np.clip(w[order], 0.0, None), v[:, order]
    factor = v * np.sqrt(w)[None]
    return LatentGaussian(mean, cov, factor, method, shrink, n, w, source)


def describe(g: LatentGaussian) -> str:
    """One line about a fitted distribution, for logs."""
    total = float(g.eigenvalues.sum())
    what = {"sample": "sample covariance", "pca": f"PCA, {g.components} components",
            "ledoit-wolf": f"Ledoit–Wolf shrinkage α = {g.shrinkage:.3f}"}[g.method]
    return (f"Gaussian fitted to {g.n_codes} codes of length {g.dim} ({what}; total variance {total:.4g}, "
            f"mean code norm {np.linalg.norm(g.mean):.4g})")


@dataclass
class Subspace:
    """The PCA subspace of a code table: ``code = mean + basis·y``; ``scales`` the codes' std along each axis."""

    mean: np.ndarray    # float64 (C,)
    basis: np.ndarray   # float64 (C, d), orthonormal columns, by decreasing variance
    scales: np.ndarray  # float64 (d,), > 0

    def project(self, codes: np.ndarray) -> np.ndarray:
        """(m, C) → (m, d)."""
        return (np.asarray(codes, np.float64).reshape(-1, self.mean.shape[0]) - self.mean) @ self.basis

    def lift(self, y: np.ndarray) -> np.ndarray:
        """(m, d) → float32 codes (m, C)."""
        return (self.mean + y @ self.basis.T).astype(np.float32)


def pca_subspace(codes: np.ndarray, pca: int | None, source: str = "") -> Subspace:
    """The ``pca`` leading principal directions of ``codes`` (n, C), default all ``min(n − 1, C)`` with a spread."""
    # the Gaussian's own checks (shape, count, finite values, spread, --pca range), with its messages
    g = fit_gaussian(codes, pca=pca if pca is not None else min(len(codes) - 1, np.shape(codes)[-1]),
                     source=source)
    keep = g.eigenvalues > 1e-10 * float(g.eigenvalues[0])  # directions the codes span
    if pca is not None and not keep.all():
        raise UserError(f"--pca {pca}: the learned codes vary along only {int(keep.sum())} directions")
    basis = g.factor[:, keep] / np.sqrt(g.eigenvalues[keep])
    return Subspace(g.mean, basis, np.sqrt(g.eigenvalues[keep]))


# --------------------------------------------------------------------------
# paths between codes and rotations, and uniform rotations

def uniform_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rotations uniform on SO(3) as intrinsic XYZ Euler angles (radians), float32 (n, 3).

    A normalised 4-D standard Gaussian is uniform on the unit quaternions' sphere, whose image is
    the Haar (uniform) measure on SO(3); the angles are those that ``roma.euler_to_rotmat("XYZ")``
    (the decoder's convention) turns back into the rotation.
    """
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    rot = roma.unitquat_to_rotmat(torch.as_tensor(q))
    return roma.rotmat_to_euler("XYZ", rot).numpy().astype(np.float32)


def interpolation_steps(steps: int) -> np.ndarray:
    """``steps`` positions from 0 to 1 inclusive, float64."""
    if steps < 2:
        raise UserError(f"--steps {steps}: expected an integer >= 2 (both ends are included)")
    return np.linspace(0.0, 1.0, steps)


def interpolate_codes(a: np.ndarray, b: np.ndarray, s: np.ndarray, path: str = "slerp") -> np.ndarray:
    """Codes along the path from ``a`` to ``b`` at positions ``s`` in [0, 1] → float32 (len(s), C).

    ``linear``: ``(1 − s)·a + s·b``. ``slerp``: ``sin((1 − s)Ω)/sin Ω · a + sin(sΩ)/sin Ω · b``,
    ``Ω`` the angle between ``a`` and ``b`` (linear when they are (anti)parallel
    or one is zero). At ``s = 0`` and ``s = 1`` the codes are ``a`` and ``b`` exactly.
    """
    if path not in PATHS:
        raise UserError(f"--path {path}: expected one of {', '.join(PATHS)}")
    a64, b64 = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    s = np.asarray(s, dtype=np.float64).reshape(-1, 1)
    out = (1 - s) * a64 + s * b64
    if path == "slerp":
        na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
        if na > 0 and nb > 0:
            cos = float(np.clip(a64 @ b64 / (na * nb), -1.0, 1.0))
            omega = math.acos(cos)
            if 1e-6 < omega < math.pi - 1e-6:
                out = (np.sin((1 - s) * omega) * a64 + np.sin(s * omega) * b64) / math.sin(omega)
    out = out.astype(np.float32)
    out[s[:, 0] == 0] = np.asarray(a, np.float32).reshape(-1)
    out[s[:, 0] == 1] = np.asarray(b, np.float32).reshape(-1)
    return out


def interpolate_angles(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Rotations along the SO(3) geodesic from Euler angles ``a`` to ``b`` → intrinsic XYZ Euler angles
    float32 (len(s), 3); the ends are ``a`` and ``b`` themselves."""
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    ra = roma.euler_to_rotmat("XYZ", torch.as_tensor(np.asarray(a, np.float64)))
    rb = roma.euler_to_rotmat("XYZ", torch.as_tensor(np.asarray(b, np.float64)))
    r = roma.rotmat_slerp(ra, rb, torch.as_tensor(s))
    out = roma.rotmat_to_euler("XYZ", r).numpy().astype(np.float32)
    out[s == 0] = np.asarray(a, np.float32)
    out[s == 1] = np.asarray(b, np.float32)
    return out


def rotation_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (radians) of the rotation between two sets of Euler angles."""
    ra = roma.euler_to_rotmat("XYZ", torch.as_tensor(np.asarray(a, np.float64)))
    rb = roma.euler_to_rotmat("XYZ", torch.as_tensor(np.asarray(b, np.float64)))
    return float(roma.rotmat_geodesic_distance(ra, rb))
