"""Two-sample statistics of descriptors: Kolmogorov–Smirnov tests, quartiles, a verdict in words."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.stats import ks_2samp

__all__ = ["REAL", "GENERATED", "P_STRONG", "P_WEAK", "KS_COLUMNS", "finite", "verdict", "ks_test", "ks_table",
           "format_p"]

#: The default names of the two sides of a comparison.
REAL, GENERATED = "real", "generated"
#: p-values below which the verdict says the distributions differ, or that there is weak evidence.
P_STRONG, P_WEAK = 0.01, 0.05
#: The columns of :func:`ks_table` (and of ``ks_tests.csv``).
KS_COLUMNS = ("descriptor", "level", "n_real", "n_generated", "real_median", "real_q1", "real_q3",
              "generated_median", "generated_q1", "generated_q3", "ks_statistic", "p_value", "verdict")


def finite(values: Iterable[Any]) -> np.ndarray:
    """The finite values (None and NaN left out) as a float64 ``(n,)`` array."""
    a = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    return a[np.isfinite(a)]


def verdict(p: float) -> str:
    """A KS p-value in words."""
    if not np.isfinite(p):
        return "not enough data"
    if p < P_STRONG:
        return "distributions differ (p < 0.01)"
    if p < P_WEAK:
        return "weak evidence of a difference (p < 0.05)"
    return "no evidence of a difference"


def ks_test(a: Iterable[Any], b: Iterable[Any]) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov statistic D and p-value (``scipy.stats.ks_2samp``, two-sided) of
    the finite values of ``a`` and ``b``; NaN, NaN when a side has none."""
    x, y = finite(a), finite(b)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan
    res = ks_2samp(x, y)
    return float(res.statistic), float(res.pvalue)


def _quartiles(a: np.ndarray) -> tuple[float, float, float]:
    """Median, first and third quartile (NaN for no values)."""
    if len(a) == 0:
        return math.nan, math.nan, math.nan
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return float(med), float(q1), float(q3)


def ks_table(real: Sequence[dict], generated: Sequence[dict], names: Sequence[str], level: str) -> list[dict]:
    """One row (:data:`KS_COLUMNS`) per descriptor of ``names``: sizes, median and quartiles of both
    sides, KS D, p-value and verdict; ``level`` is ``"frame"`` or ``"sequence"``."""
    rows = []
    for name in names:
        a, b = finite(r[name] for r in real), finite(r[name] for r in generated)
        d, p = ks_test(a, b)
        ra, rb = _quartiles(a), _quartiles(b)
        rows.append({"descriptor": name, "level": level, "n_real": len(a), "n_generated": len(b),
                     "real_median": ra[0], "real_q1": ra[1], "real_q3": ra[2],
                     "generated_median": rb[0], "generated_q1": rb[1], "generated_q3": rb[2],
                     "ks_statistic": d, "p_value": p, "verdict": verdict(p)})
    return rows


def format_p(p: float | None) -> str:
    """A p-value for tables and figure titles: 3 decimals, or 2 significant digits below 0.001."""
    if p is None or not np.isfinite(p):
        return "–"
    if p >= 0.001:
        return f"{p:.3f}"
    return f"{p:.1e}"
