"""The interface every prior of ``test.py -t sample`` has (:class:`Prior`), the base of the priors
that work in the codes' PCA subspace (:class:`SubspacePrior`), and what several priors share."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
from scipy.optimize import minimize_scalar

from autodecoder.decoding import latent
from autodecoder.decoding.latent import Subspace
from autodecoder.experiment.errors import UserError
from autodecoder.experiment.guards import atomic_path

LOG_2PI = math.log(2 * math.pi)
#: File format → the prior class that reads it (filled as the priors are defined).
_BY_FORMAT: dict[str, type["Prior"]] = {}


def _save(path: str | Path, **arrays: Any) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file handle: np.savez would append ".npz" to the temporary name
            np.savez(fh, **arrays)
    return path


class Prior:
    """A distribution over codes of length ``C``; see :mod:`autodecoder.decoding.priors`."""

    name: ClassVar[str] = ""
    format: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.format:  # a concrete prior: its files are read back by :meth:`load`
            _BY_FORMAT[cls.format] = cls

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
    def _from_npz(cls, z: Any, path: Path) -> "Prior":
        """The prior held by the open ``.npz`` ``z`` (read from ``path``)."""
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
                cls = _BY_FORMAT.get(fmt)
                if cls is None:
                    raise UserError(f"{path}: not a latent distribution written by this project")
                return cls._from_npz(z, path)
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{path}: cannot read the latent distribution ({e})") from None


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
    def _from_npz(cls, z: Any, path: Path) -> "SubspacePrior":
        return cls(Subspace(z["mean"], z["basis"], z["scales"]), *(read(z[k]) for k, read in cls.fields.items()),
                   str(z["selection"]), str(z["source"]))


def choose_bandwidth(loss: Callable[[float], float]) -> tuple[float, float]:
    """``(h, loss(log h))`` minimising ``loss`` over log h in [log 1e-3, log 10]: a grid, then a bounded search."""
    grid = np.linspace(math.log(1e-3), math.log(10.0), 61)
    values = [loss(g) for g in grid]
    i = int(np.argmin(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    log_h = float(res.x) if res.fun <= values[i] else float(grid[i])
    return math.exp(log_h), float(loss(log_h))
