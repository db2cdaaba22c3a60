"""`python -m harness compare A B [C ...]`: reports side by side, one table per strategy and task.

Stack-only metrics (``METRICS[m].stack_only``: LM calls, tokens, spend, score) depend only on the
software stack, so they are compared exactly and flagged where they differ from the first report.
Machine-dependent ones (time, memory, disk) are shown as ratios to the first report; times also
per calibration second (each time divided by its report's ``calibration.seconds``), which is what
makes two machines comparable. Values are medians over the records with status ok; with repeats the
range and count are shown beside them.

A report is a report.json, or a bench's OUT folder holding one (with machine.json beside it);
loading it and the context notes are harness.context's, shared with ``check`` (harness/check.py).
"""

from __future__ import annotations

import csv
import io
import json
import math
import string
import sys
from dataclasses import dataclass
from typing import Any

from harness.aggregate import Key, Stat, groups
from harness.context import Loaded, context_notes, fmt, is_time, load, machine_text
from harness.errors import HarnessError
from harness.record import METRICS, Metric


def fmt_stat(s: Stat | None) -> str:
    if s is None:
        return "-"
    return fmt(s.median) if s.n < 2 else f"{fmt(s.median)} ({fmt(s.lo)}-{fmt(s.hi)}, n={s.n})"


# --------------------------------------------------------------------------- rows


@dataclass
class Cell:
    """One metric of one strategy and task across the reports."""

    metric: Metric
    stats: list[Stat | None]
    ratios: list[float | None]  # to the first report (index 0 is always None)
    calibrated: list[float | None]  # times: ratio of time / calibration seconds
    differs: bool  # a stack-only metric that differs from the first report


@dataclass
class Row:
    strategy: str
    task: str
    statuses: list[str | None]  # None: no record in that report
    cells: list[Cell]
    errors: list[str | None]  # first error of a report's runs that are not ok

    @property
    def flags(self) -> list[str]:
        out = [f"{c.metric.name} differs: " + ", ".join(f"{fmt_stat(s)} ({LABELS[i]})" for i, s in enumerate(c.stats))
               for c in self.cells if c.differs]
        if len(set(self.statuses)) > 1:
            out.append("status differs" if None not in self.statuses else "missing in " + ", ".join(
                LABELS[i] for i, s in enumerate(self.statuses) if s is None))
        return out


LABELS = string.ascii_uppercase


def _ratio(s: Stat | None, ref: Stat | None) -> float | None:
    if s is None or ref is None:
        return None
    if ref.median == 0:
        return 1.0 if s.median == 0 else None
    return s.median / ref.median


def _same(a: Stat | None, b: Stat | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a.median, b.median, rel_tol=1e-9, abs_tol=1e-12)


def build_rows(loaded: list[Loaded]) -> list[Row]:
    per_report = [groups(x.report.runs) for x in loaded]
    keys: dict[Key, None] = {}
    for gs in per_report:
        keys.update(dict.fromkeys(gs))
    cals = [x.calibration_s for x in loaded]
    rows = []
    for key in keys:
        gs = [g.get(key) for g in per_report]
        cells = []
        for name, metric in METRICS.items():
            stats = [g.stats[name] if g else None for g in gs]
            if all(s is None for s in stats):
                continue
            ratios = [None] + [_ratio(s, stats[0]) for s in stats[1:]]
            calibrated = [None] * len(stats)
            if is_time(metric) and cals[0]:
                calibrated = [None] + [r * cals[0] / c if r is not None and c else None
                                       for r, c in zip(ratios[1:], cals[1:])]
            differs = metric.stack_only and gs[0] is not None and any(
                g is not None and not _same(s, stats[0]) for g, s in zip(gs[1:], stats[1:]))
            cells.append(Cell(metric, stats, ratios, calibrated, differs))
        rows.append(Row(key[0], key[1], [g.status_text() if g else None for g in gs], cells,
                        [g.errors[0] if g and g.errors else None for g in gs]))
    return rows


# --------------------------------------------------------------------------- output


def _r(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"


def render_md(loaded: list[Loaded], rows: list[Row], notes: list[str]) -> str:
    others = loaded[1:]
    out = [f"# Comparison of {len(loaded)} reports", "",
           "| | report | created | profile | LM | machine | calibration | python | dspy | torch | commit |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in loaded:
        r, cal = x.report, x.report.calibration
        cal_text = f"{cal.seconds * 1000:.1f} ms (spread {cal.spread_pct:.0f}%)" if cal else "-"
        out.append(f"| {x.label} | `{x.path}` | {r.created_at:%Y-%m-%d %H:%M} | {r.profile} | {r.lm} | "
                   f"{machine_text(r)} | {cal_text} | {r.software.python} | {r.software.packages.get('dspy')} | "
                   f"{r.software.packages.get('torch')} | {(r.git.commit or '-')[:10]} |")
    out += ["", "## Context", ""]
    out += [f"- **{n}**" for n in notes] or ["- same profile, LM, stack and machine in every report"]
    flagged = [(row, f) for row in rows for f in row.flags]
    out += ["", "## Differences", "",
            "Stack-only metrics (LM calls, tokens, spend, score) are compared exactly; status and missing pairs too.", ""]
    out += [f"- {row.strategy} / {row.task}: {f}" for row, f in flagged] or \
           [f"- none in {len(rows)} strategy/task pairs"]
    head = ["metric (unit)"] + [x.label for x in loaded] + [f"{x.label}/A" for x in others] + \
           [f"{x.label}/A per cal." for x in others] + ["flag"]
    out += ["", "## Per strategy and task", "",
            "Medians over the runs with status ok; with repeats, (min-max, n). X/A: ratio to report A. "
            "X/A per cal.: the same for times divided by each report's calibration seconds.", ""]
    for row in rows:
        out += [f"### {row.strategy} / {row.task}", ""]
        if any(s != "ok" for s in row.statuses):
            out += ["status: " + ", ".join(f"{x.label} {s or 'no record'}" for x, s in zip(loaded, row.statuses))]
            out += [f"- {x.label}: {e[:200]}" for x, e in zip(loaded, row.errors) if e] + [""]
        if not row.cells:
            continue
        out += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 2) + "---|"]
        for c in row.cells:
            vals = [fmt_stat(s) for s in c.stats] + [_r(v) for v in c.ratios[1:]] + [_r(v) for v in c.calibrated[1:]]
            out.append(f"| {c.metric.name} ({c.metric.unit}) | " + " | ".join(vals) +
                       f" | {'DIFFERS' if c.differs else ''} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_csv(loaded: list[Loaded], rows: list[Row], notes: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["strategy", "task", "metric", "unit", "stack_only", "lower_is_better", "report", "path", "status",
                "median", "min", "max", "n", "ratio_to_first", "calibrated_ratio_to_first", "differs_from_first"])
    for row in rows:
        for c in row.cells:
            for i, (x, s) in enumerate(zip(loaded, c.stats)):
                w.writerow([row.strategy, row.task, c.metric.name, c.metric.unit, c.metric.stack_only,
                            c.metric.lower_is_better, x.label, x.path, row.statuses[i] or "",
                            *(("", "", "", "") if s is None else (s.median, s.lo, s.hi, s.n)),
                            "" if c.ratios[i] is None else round(c.ratios[i], 6),
                            "" if c.calibrated[i] is None else round(c.calibrated[i], 6),
                            c.differs and i > 0 and not _same(s, c.stats[0])])
    return buf.getvalue()


def render_json(loaded: list[Loaded], rows: list[Row], notes: list[str]) -> str:
    def stat_json(s: Stat | None) -> dict | None:
        return None if s is None else {"median": s.median, "min": s.lo, "max": s.hi, "n": s.n}

    doc = {
        "reports": [{"label": x.label, "path": x.path, "profile": x.report.profile, "lm": x.report.lm,
                     "machine": x.report.machine.model_dump(), "software": x.report.software.model_dump(),
                     "git": x.report.git.model_dump(), "calibration_s": x.calibration_s} for x in loaded],
        "notes": notes,
        "rows": [{"strategy": row.strategy, "task": row.task, "statuses": row.statuses, "flags": row.flags,
                  "metrics": {c.metric.name: {"unit": c.metric.unit, "stack_only": c.metric.stack_only,
                                              "values": [stat_json(s) for s in c.stats], "ratios": c.ratios,
                                              "calibrated_ratios": c.calibrated, "differs": c.differs}
                              for c in row.cells}} for row in rows],
    }
    return json.dumps(doc, indent=1) + "\n"


RENDER = {"md": render_md, "csv": render_csv, "json": render_json}


def main_compare(args: Any) -> int:
    if not 2 <= len(args.reports) <= len(LABELS):
        raise HarnessError(f"compare needs 2 to {len(LABELS)} reports (report.json files or bench folders), "
                           f"got {len(args.reports)}")
    loaded = [load(path, label) for path, label in zip(args.reports, LABELS)]
    rows = build_rows(loaded)
    notes = context_notes(loaded)
    if args.format == "csv":
        for n in notes:
            print(f"note: {n}", file=sys.stderr)
    sys.stdout.write(RENDER[args.format](loaded, rows, notes))
    return 0

