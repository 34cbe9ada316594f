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
  ``ν`` pseudo-codes, ``Σ_k = (N_k·S_k + ν·diag S_k)/(N_k + ν)`` (:func:`.gmm._m_step`): positive
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

import numpy as np

from autodecoder.decoding.priors.base import Prior, SubspacePrior
from autodecoder.decoding.priors.gaussian import GaussianPrior
from autodecoder.decoding.priors.gmm import MAX_COMPONENTS, GMMPrior
from autodecoder.decoding.priors.kde import KDEPrior
from autodecoder.decoding.priors.mix import MIX_NEIGHBOURS, MixPrior
from autodecoder.experiment.errors import UserError

__all__ = ["Prior", "SubspacePrior", "GaussianPrior", "GMMPrior", "KDEPrior", "MixPrior", "PRIORS", "fit_prior",
           "MAX_COMPONENTS", "MIX_NEIGHBOURS"]

#: The priors of ``test.py -t sample --prior NAME``.
PRIORS: dict[str, type[Prior]] = {"gaussian": GaussianPrior, "gmm": GMMPrior, "kde": KDEPrior, "mix": MixPrior}


def fit_prior(name: str, codes: np.ndarray, pca: int | None = None, validation: np.ndarray | None = None,
              seed: int = 0, source: str = "") -> Prior:
    """Fit the prior ``name`` to ``codes`` (n, C); ``validation`` codes (m, C) choose its settings when given."""
    if name not in PRIORS:
        raise UserError(f"--prior {name}: expected one of {', '.join(PRIORS)}")
    return PRIORS[name].fit(codes, pca=pca, validation=validation, seed=seed, source=source)
