"""Small statistics written out here: ranks, Spearman's rho with a permutation p-value, least squares.

Nothing here knows about claims or records; numpy does the arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

PERMUTATIONS = 10_000
SEED = 20240601  # fixed: the same report always gives the same p-value


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of the ranks they span (what Spearman's rho needs)."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den else float("nan")


@dataclass(frozen=True)
class Spearman:
    rho: float  # nan when either side is constant
    p_greater: float | None  # one-sided permutation p-value for rho > 0; None when rho is nan
    n: int
    permutations: int

    def describe(self) -> str:
        if math.isnan(self.rho):
            return f"rho undefined (n={self.n}: one side is constant)"
        return f"rho={self.rho:+.2f} (n={self.n}, one-sided permutation p={self.p_greater:.3f})"


def spearman(x: Sequence[float], y: Sequence[float], permutations: int = PERMUTATIONS, seed: int = SEED) -> Spearman:
    """Spearman's rho of x and y (Pearson's r of their average ranks) and the share of `permutations`
    random pairings of the same ranks whose rho is at least as large (one-sided, ties kept as they are)."""
    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    n = len(x)
    rx, ry = average_ranks(x), average_ranks(y)
    rho = _pearson(rx, ry) if n >= 2 else float("nan")
    if math.isnan(rho):
        return Spearman(rho, None, n, 0)
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((permutations, n)), axis=1)
    ry_perm = ry[perms]
    a = rx - rx.mean()
    b = ry_perm - ry_perm.mean(axis=1, keepdims=True)
    r = (b @ a) / np.sqrt((a * a).sum() * (b * b).sum(axis=1))
    p = (1 + int((r >= rho - 1e-12).sum())) / (permutations + 1)
    return Spearman(rho, p, n, permutations)


@dataclass(frozen=True)
class LinearFit:
    """y = a + b * x by least squares."""

    a: float
    b: float
    r2: float | None  # None when y is constant (nothing to explain)
    n: int
    x_min: float
    x_max: float

    def at(self, x: float) -> float:
        return self.a + self.b * x

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "r2": self.r2, "points": self.n, "x_min": self.x_min, "x_max": self.x_max}


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> LinearFit | None:
    """Least squares of y on x; None with fewer than two distinct x."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if len(x) != len(y) or len(set(x.tolist())) < 2:
        return None
    mx, my = x.mean(), y.mean()
    b = float(((x - mx) * (y - my)).sum() / ((x - mx) ** 2).sum())
    a = float(my - b * mx)
    ss_tot = float(((y - my) ** 2).sum())
    ss_res = float(((y - (a + b * x)) ** 2).sum())
    return LinearFit(a=a, b=b, r2=None if ss_tot == 0 else 1.0 - ss_res / ss_tot, n=len(x),
                     x_min=float(x.min()), x_max=float(x.max()))
