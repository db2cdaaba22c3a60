"""Repeats folded into one row per (strategy, task): median, spread and count of each metric.

With REPEAT=N a bench has N records per strategy and task; comparisons and checks read the
median, and the spread (max - min over the median) is the noise the report states.

Computed from a report's runs whenever needed, never stored in the report (schema 3), so that a
derived figure cannot drift from the records it comes from.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from harness.record import METRICS, Report, RunRecord

Key = tuple[str, str]


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

    @property
    def spread(self) -> float:
        """max - min, in the metric's unit (0 for a single value)."""
        return self.hi - self.lo


@dataclass(frozen=True)
class Group:
    """The records of one strategy on one task: how they ended, and their metrics over those that are ok."""

    strategy: str
    task: str
    statuses: dict[str, int]
    stats: dict[str, Stat | None]
    errors: tuple[str, ...] = ()

    @property
    def key(self) -> Key:
        return (self.strategy, self.task)

    @property
    def runs(self) -> int:
        return sum(self.statuses.values())

    @property
    def all_ok(self) -> bool:
        return self.statuses.get("ok", 0) == self.runs > 0

    def status_text(self) -> str:
        """"ok", or e.g. "failed 1/3, ok 2/3"."""
        if self.all_ok:
            return "ok"
        return ", ".join(f"{s} {n}/{self.runs}" for s, n in sorted(self.statuses.items(), key=lambda x: x[0] != "ok"))


def stat(values: Iterable[float | None]) -> Stat | None:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return Stat(median=statistics.median(vals), lo=min(vals), hi=max(vals), n=len(vals))


def metric_value(rec: RunRecord, name: str) -> float | None:
    value = getattr(rec, name, None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def groups(runs: Iterable[RunRecord]) -> dict[Key, Group]:
    """{(strategy, task): Group}, in the order the runs come; metrics over the runs with status ok."""
    by_key: dict[Key, list[RunRecord]] = {}
    for run in runs:
        by_key.setdefault(run.key, []).append(run)
    out = {}
    for (strategy, task), recs in by_key.items():
        ok = [r for r in recs if r.status == "ok"]
        errors = tuple(r.error for r in recs if r.status != "ok" and r.error)
        out[(strategy, task)] = Group(strategy=strategy, task=task, statuses=dict(Counter(r.status for r in recs)),
                                      stats={m: stat(metric_value(r, m) for r in ok) for m in METRICS}, errors=errors)
    return out


def aggregate(report: Report, ok_only: bool = True) -> dict[Key, dict[str, Stat | None]]:
    """{(strategy, task): {metric: Stat}} over the report's records (status ok only by default)."""
    by_key: dict[Key, list[RunRecord]] = {}
    for rec in report.runs:
        if rec.status == "ok" or not ok_only:
            by_key.setdefault(rec.key, []).append(rec)
    return {key: {m: stat(metric_value(r, m) for r in recs) for m in METRICS} for key, recs in by_key.items()}
