"""Repeats folded into one row per (strategy, task): median, spread and count of each metric.

With REPEAT=N a bench has N records per strategy and task; comparisons and checks read the
median, and the spread (max - min over the median) is the noise the report states.

The functions take run records, or their JSON dicts: the 1 -> 2 schema migration (record.py)
computes the aggregates of an old report before its records are validated.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.record import METRICS, Aggregate, MetricStat, Report, RunRecord

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

    def to_model(self) -> MetricStat:
        return MetricStat(median=self.median, min=self.lo, max=self.hi, n=self.n)


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

    def to_model(self) -> Aggregate:
        return Aggregate(strategy=self.strategy, task=self.task, statuses=dict(self.statuses),
                         metrics={m: s.to_model() for m, s in self.stats.items() if s is not None})


def stat(values: Iterable[float | None]) -> Stat | None:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return Stat(median=statistics.median(vals), lo=min(vals), hi=max(vals), n=len(vals))


def _field(run: RunRecord | Mapping[str, Any], name: str) -> Any:
    return run.get(name) if isinstance(run, Mapping) else getattr(run, name, None)


def metric_value(rec: RunRecord | Mapping[str, Any], name: str) -> float | None:
    value = _field(rec, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def groups(runs: Iterable[RunRecord | Mapping[str, Any]]) -> dict[Key, Group]:
    """{(strategy, task): Group}, in the order the runs come; metrics over the runs with status ok."""
    by_key: dict[Key, list] = {}
    for run in runs:
        by_key.setdefault((str(_field(run, "strategy")), str(_field(run, "task"))), []).append(run)
    out = {}
    for (strategy, task), recs in by_key.items():
        ok = [r for r in recs if _field(r, "status") == "ok"]
        errors = tuple(str(_field(r, "error")) for r in recs if _field(r, "status") != "ok" and _field(r, "error"))
        out[(strategy, task)] = Group(
            strategy=strategy, task=task, statuses=dict(Counter(str(_field(r, "status")) for r in recs)),
            stats={m: stat(metric_value(r, m) for r in ok) for m in METRICS}, errors=errors)
    return out


def build_aggregates(runs: Iterable[RunRecord | Mapping[str, Any]]) -> list[Aggregate]:
    """What `Report.aggregates` holds: one Aggregate per strategy and task."""
    return [g.to_model() for g in groups(runs).values()]


def aggregate(report: Report, ok_only: bool = True) -> dict[Key, dict[str, Stat | None]]:
    """{(strategy, task): {metric: Stat}} over the report's records (status ok only by default)."""
    by_key: dict[Key, list[RunRecord]] = {}
    for rec in report.runs:
        if rec.status == "ok" or not ok_only:
            by_key.setdefault(rec.key, []).append(rec)
    return {key: {m: stat(metric_value(r, m) for r in recs) for m in METRICS} for key, recs in by_key.items()}
