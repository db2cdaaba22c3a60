"""Small statistics written out here: ranks, Spearman's rho with a permutation p-value, least squares with
the slope's t-test and confidence interval (Student's t from the incomplete beta function).

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


# --------------------------------------------------------------------------- Student's t, for the slope's test


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln) * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_quantile(p: float, df: int) -> float:
    """The t with P(T <= t) = p (0.5 < p < 1), by bisection on t_sf."""
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > 1.0 - p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_sf(mid, df) > 1.0 - p else (lo, mid)
    return (lo + hi) / 2.0


# --------------------------------------------------------------------------- least squares


@dataclass(frozen=True)
class LinearFit:
    """y = a + b * x by least squares, with the slope's standard error, a one-sided t-test of b > 0 and a
    95% confidence interval of b (n - 2 degrees of freedom; none with two points)."""

    a: float
    b: float
    r2: float | None  # None when y is constant (nothing to explain)
    n: int
    x_min: float
    x_max: float
    sizes: int = 0  # distinct x
    se_b: float | None = None  # None with n = 2 (no degree of freedom left)
    p_slope: float | None = None  # one-sided P(a slope this large | true slope 0); None with n = 2
    ci_b: tuple[float, float] | None = None  # 95% interval of the slope; None with n = 2
    x_mean: float = 0.0
    sxx: float = 0.0
    s_res: float | None = None  # residual standard deviation

    @property
    def df(self) -> int:
        return self.n - 2

    def at(self, x: float) -> float:
        return self.a + self.b * x

    def interval(self, x: float, level: float = 0.95) -> tuple[float, float] | None:
        """Confidence interval of the line's value at x (the mean y there), None without a degree of freedom."""
        if self.df < 1 or self.s_res is None or not self.sxx:
            return None
        half = t_quantile(0.5 + level / 2, self.df) * self.s_res * math.sqrt(1 / self.n + (x - self.x_mean) ** 2 / self.sxx)
        return self.at(x) - half, self.at(x) + half

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "r2": self.r2, "points": self.n, "sizes_n": self.sizes, "x_min": self.x_min,
                "x_max": self.x_max, "se_b": self.se_b, "p_slope": self.p_slope,
                "ci_b": list(self.ci_b) if self.ci_b else None, "df": self.df}


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> LinearFit | None:
    """Least squares of y on x; None with fewer than two distinct x."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if len(x) != len(y) or len(set(x.tolist())) < 2:
        return None
    mx, my = x.mean(), y.mean()
    sxx = float(((x - mx) ** 2).sum())
    b = float(((x - mx) * (y - my)).sum() / sxx)
    a = float(my - b * mx)
    ss_tot = float(((y - my) ** 2).sum())
    ss_res = max(0.0, float(((y - (a + b * x)) ** 2).sum()))
    if ss_res <= 1e-18 * max(1.0, ss_tot):
        ss_res = 0.0
    n, df = len(x), len(x) - 2
    se = p = ci = s_res = None
    if df >= 1:
        s_res = math.sqrt(ss_res / df)
        se = s_res / math.sqrt(sxx)
        if se > 0:
            p = t_sf(b / se, df)
            half = t_quantile(0.975, df) * se
            ci = (b - half, b + half)
        else:  # the points lie exactly on the line
            p = 0.0 if b > 0 else 1.0
            ci = (b, b)
    return LinearFit(a=a, b=b, r2=None if ss_tot == 0 else 1.0 - ss_res / ss_tot, n=n, x_min=float(x.min()),
                     x_max=float(x.max()), sizes=len(set(x.tolist())), se_b=se, p_slope=p, ci_b=ci, x_mean=float(mx),
                     sxx=sxx, s_res=s_res)
