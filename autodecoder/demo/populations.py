"""Populations of phantom cells with realistic variation, for held-out benchmarks of generated cells.

The demo's six cells (:func:`autodecoder.demo.phantoms.demo_sequences`) vary little: sizes within
a few per cent, every dividing cell dividing at the same moment. A population here draws, per
cell, the parameters that vary between real cells of one kind from stated distributions and
passes them to :func:`autodecoder.demo.phantoms.phantom_sequence` as ``overrides`` (the rest —
orientation, shape details, directions of filopodia, spherical-harmonic coefficients — comes from
the cell's own phantom seed, as ever). World units: the grid's [-1, 1] cube; ``u`` the normalised
time of the sequence, 0 at the first frame and 1 at the last.

``divide`` (:data:`DISTRIBUTIONS`)
    * ``radius`` U(0.29, 0.38) (the demo's: U(0.35, 0.38)): volumes vary about 2.2-fold;
    * ``growth`` U(0.04, 0.28): the mother's relative radius growth before abscission;
    * ``abscission`` U(0.40, 1.30): the time of division; about a third of the cells (those with
      ``abscission > 1``) pinch but do not divide within the sequence, as cells caught at a random
      phase of their cycle do;
    * ``elongate_start`` = ``abscission`` − U(0.30, 0.50), at least 0: the pinching takes that long.

``filo``
    * ``radius`` U(0.27, 0.37) (body radius before its per-axis factors; demo 0.35);
    * ``count`` uniform on 2 … 8 filopodia (demo 4 … 7);
    * ``length`` log-normal, median 1, σ 0.3 of the log, within [0.5, 1.8]: a factor on each
      filopodium's extension beyond the body (demo 1);
    * ``growth`` U(0, 0.15): the body's relative radius growth over the sequence (demo 0).

``deform``
    * ``radius`` U(0.31, 0.42) (demo U(0.36, 0.42));
    * ``amplitude`` log-normal, median 1, σ 0.35, within [0.4, 2.2]: a factor on the deformation's
      spherical-harmonic amplitudes (the largest radial change stays capped at 35 %);
    * ``travel`` U(0.02, 0.20): how far the centre moves (demo U(0.05, 0.10));
    * ``growth`` U(0, 0.20): relative radius growth over the sequence (demo 0).

A population is reproducible from its seed: one ``numpy.random.default_rng(seed)`` draws, cell by
cell, the cell's phantom seed and then its parameters (:func:`draw_population`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from autodecoder.demo.phantoms import KINDS, phantom_sequence

__all__ = ["DISTRIBUTIONS", "Cell", "draw_population", "cell_masks"]


def _lognormal(sigma: float, lo: float, hi: float) -> Callable[[np.random.Generator], float]:
    return lambda rng: float(np.clip(rng.lognormal(0.0, sigma), lo, hi))


def _uniform(lo: float, hi: float) -> Callable[[np.random.Generator], float]:
    return lambda rng: float(rng.uniform(lo, hi))


#: Per kind: parameter → how it is drawn (in this order) from the population's generator.
DISTRIBUTIONS: dict[str, dict[str, Callable[[np.random.Generator], float]]] = {
    "divide": {"radius": _uniform(0.29, 0.38), "growth": _uniform(0.04, 0.28),
               "abscission": _uniform(0.40, 1.30), "elongate_start": _uniform(0.30, 0.50)},
    "filo": {"radius": _uniform(0.27, 0.37), "count": lambda rng: int(rng.integers(2, 9)),
             "length": _lognormal(0.3, 0.5, 1.8), "growth": _uniform(0.0, 0.15)},
    "deform": {"radius": _uniform(0.31, 0.42), "amplitude": _lognormal(0.35, 0.4, 2.2),
               "travel": _uniform(0.02, 0.20), "growth": _uniform(0.0, 0.20)},
}


@dataclass(frozen=True)
class Cell:
    """One cell of a population: its kind, phantom seed and drawn parameters (``overrides``)."""

    kind: str
    seed: int
    overrides: dict[str, float] = field(default_factory=dict)

    def divides_within(self) -> bool | None:
        """Whether a dividing cell splits before the last frame (None for other kinds)."""
        return self.overrides["abscission"] <= 1.0 if self.kind == "divide" else None


def draw_population(kind: str, n: int, seed: int) -> list[Cell]:
    """``n`` cells of ``kind`` with parameters drawn from :data:`DISTRIBUTIONS` (module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    cells = []
    for _ in range(n):
        cell_seed = int(rng.integers(2 ** 31))
        params = {name: draw(rng) for name, draw in DISTRIBUTIONS[kind].items()}
        if kind == "divide":  # the pinching lasts elongate_start (drawn as a duration) before abscission
            params["elongate_start"] = max(params["abscission"] - params["elongate_start"], 0.0)
        cells.append(Cell(kind, cell_seed, params))
    return cells


def cell_masks(cell: Cell, grid: int, frames: int) -> np.ndarray:
    """The cell's bool mask sequence ``(T, X, Y, Z)`` on a ``grid``³ cube (:func:`phantom_sequence`)."""
    return phantom_sequence(cell.kind, grid, frames, cell.seed, cell.overrides)
