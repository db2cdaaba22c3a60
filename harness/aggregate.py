"""Repeats folded into one row per (strategy, task): median, spread and count of each metric.

With REPEAT=N a bench has N records per strategy and task; comparisons and checks read the
median, and the spread (max - min over the median) is the noise the report states.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from harness.record import METRICS, Report, RunRecord


@dataclass(frozen=True)
class Stat:
    median: float
    lo: float
    hi: float
    n: int

    @property
    def spread_pct(self) -> float | None:
        """(max - min) / median in percent; None for a single value or a zero median."""
        if self.n < 2 or self.median == 0:
            return None
        return 100.0 * (self.hi - self.lo) / abs(self.median)


def stat(values: list[float]) -> Stat | None:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return Stat(median=statistics.median(vals), lo=min(vals), hi=max(vals), n=len(vals))


def metric_value(rec: RunRecord, name: str) -> float | None:
    value = getattr(rec, name, None)
    return None if value is None else float(value)


def aggregate(report: Report, ok_only: bool = True) -> dict[tuple[str, str], dict[str, Stat | None]]:
    """{(strategy, task): {metric: Stat}} over the report's records (status ok only by default)."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for rec in report.runs:
        if ok_only and rec.status != "ok":
            continue
        groups.setdefault(rec.key, []).append(rec)
    return {key: {m: stat([metric_value(r, m) for r in recs]) for m in METRICS} for key, recs in groups.items()}
