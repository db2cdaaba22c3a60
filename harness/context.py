"""Reports as `compare` and `check` read them: loaded from a file or a bench folder, and how their contexts differ.

`compare` (harness/compare.py) renders reports side by side and `check` (harness/check.py) gates
regressions; both start from a :class:`Loaded` report and the same context notes (profile, LM,
stack, machine, calibration, completeness), defined here once. Reading and validating the file
itself is harness.load's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.load import load_report
from harness.record import Metric, Report


@dataclass(frozen=True)
class Loaded:
    """A report as read from `path`, under the label the output names it by."""

    label: str  # "A", "B", ... or "baseline", "current"
    path: str
    report: Report

    @property
    def calibration_s(self) -> float | None:
        cal = self.report.calibration
        return cal.seconds if cal is not None and cal.seconds > 0 else None


def load(path: str | Path, label: str) -> Loaded:
    """A report.json, or a folder holding one. Raises SchemaError or HarnessError with a one-line reason."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
        if not p.exists():
            raise HarnessError(f"{path} is a folder without report.json "
                               f"(write it from its runs with `python -m harness report {path}`)")
    return Loaded(label=label, path=str(path), report=load_report(p))


def is_time(metric: Metric) -> bool:
    """Wall or CPU time (unit s): the metrics a speed calibration can scale between machines."""
    return metric.unit == "s"


def fmt(value: float | None) -> str:
    """Integers with thousands separators, else 3-4 significant figures."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    if value == int(value) and abs(value) < 1e15:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4g}"


def machine_text(r: Report) -> str:
    """CPU, usable cores, RAM, GPUs and the machine id of the machine a report was made on."""
    m = r.machine
    gpus = ", ".join(g.name for g in m.gpus) or "no GPU"
    return f"{m.cpu_model}, {m.cpu_cores_usable} cores, {m.ram_mb / 1024:.1f} GiB, {gpus} ({m.machine_id})"


def _differing(what: str, values: list[tuple[str, Any]]) -> str | None:
    if len({v for _, v in values}) < 2:
        return None
    return f"different {what}: " + ", ".join(f"{v} ({label})" for label, v in values)


def context_notes(loaded: list[Loaded]) -> list[str]:
    """One line per way the reports' context differs: profile, LM, stack, machine, calibration, completeness."""
    def each(get) -> list[tuple[str, Any]]:
        return [(x.label, get(x.report)) for x in loaded]

    notes = [
        _differing("profiles (LM calls, tokens and scores are not comparable)", each(lambda r: r.profile)),
        _differing("LMs (LM calls, tokens and scores are not comparable)", each(lambda r: r.lm)),
        _differing("price references (spend is not comparable)", each(lambda r: r.priced_as)),
        _differing("stacks: python", each(lambda r: r.software.python)),
    ]
    packages = sorted({p for x in loaded for p in x.report.software.packages})
    notes += [_differing(f"stacks: {p}", each(lambda r, p=p: r.software.packages.get(p))) for p in packages]
    notes.append(_differing("machines (compare times per calibration second)", each(machine_text)))
    notes.append(_differing("commits", each(lambda r: (r.git.commit or "?")[:10] + ("+dirty" if r.git.dirty else ""))))
    notes += [f"{x.label} has no calibration: its times cannot be compared per calibration second"
              for x in loaded if x.calibration_s is None]
    notes += [f"{x.label} is incomplete: {len(x.report.missing_runs)} asked-for runs have no record"
              for x in loaded if not x.report.complete]
    return [n for n in notes if n]
