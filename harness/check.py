"""`python -m harness check`: exit 1 when a resource cost regressed beyond its threshold.

What counts (the thresholds, and the measurements they come from, are in harness/thresholds.toml;
a file given with ``--thresholds`` is layered over it):

- Stack-only metrics (LM calls, tokens, spend, score: ``METRICS[m].stack_only``) and each pair's
  status depend on the software stack alone: they are gated on every machine, exactly by default.
- Machine-dependent metrics (wall and CPU time, peak RAM, GPU memory, disk writes) count only
  against a baseline made on the same machine (``report.machine.machine_id``, a hash of host name,
  CPU model, cores, RAM and GPUs). Against another machine's baseline such a finding is
  *unconfirmed*: printed, not counted.
- A time of a *contended* run (wall time far above CPU time: the run waited for a CPU; the
  ``[contention]`` table) is unconfirmed too, on any machine.
- ``--confirm`` re-runs each pair with an unconfirmed regression (``--reruns`` times, into
  ``<current>/confirm/<UTC time>/``) after timing a fresh calibration; the finding then counts
  (*confirmed*) only if the re-runs' median is beyond the threshold too, else it is *cleared*.
  A re-run that is contended itself (wall far above CPU while the machine had less idle CPU than
  the run spent off-CPU) does not judge a time.

Exit codes: 0 nothing counted regressed, 1 a counted (or confirmed) regression, 2 the check could
not be made: bad input (a NaN, an Infinity, a negative or absurd figure, a calibration that is not
above 0), a baseline pair missing from the current report, reports of different profiles or LMs,
or any unexpected error (never 1).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import psutil

from harness import machine
from harness.aggregate import Group, Key, Stat, groups
from harness.context import Loaded, context_notes, fmt, is_time, load
from harness.errors import HarnessError, unknown
from harness.files import OutLock
from harness.load import read_toml
from harness.record import METRICS, Calibration, Metric, Report, RunRecord, utcnow
from harness.runner import RunSpec, run_one, stop_on_signals

DEFAULT_THRESHOLDS = Path(__file__).with_name("thresholds.toml")
RULE_SUMMARY = ("rule: regressed = median worse than the baseline's by more than max(pct % of it, abs, "
                "noise_k x max-min of the baseline's repeats); a time only when it is so both raw and scaled "
                "to the baseline's calibration; times, RAM, GPU memory and disk count only against the same "
                "machine's baseline and from uncontended runs, else once re-runs confirm them (--confirm)")
MAX_FIGURE = 1e15  # no measured figure comes near (1e15 s is 30 million years): larger is a broken file
DEFAULT_RERUNS = 2


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Rule:
    """How much worse a metric may get: see harness/thresholds.toml."""

    pct: float = 0.0
    abs: float = 0.0
    noise_k: float = 0.0
    normalise: bool = False

    def allowed(self, baseline: Stat) -> float:
        """max(pct % of the median, abs, noise_k x spread). `pct = inf` ignores the metric, even where the
        median is 0; otherwise a zero median or spread adds nothing (never inf x 0 = NaN)."""
        if math.isinf(self.pct):
            return math.inf
        terms = [self.abs]
        if self.pct and baseline.median:
            terms.append(self.pct / 100 * abs(baseline.median))
        if self.noise_k and baseline.spread:
            terms.append(self.noise_k * baseline.spread)
        return max(terms)

    def describe(self, baseline: Stat, unit: str) -> str:
        """E.g. "exact", "73.68 MiB = 10%" or "4 s = max(20% 2.20 s, abs 0.5 s, 2 x spread 2 s)"."""
        parts = []
        if self.pct:
            parts.append(f"{self.pct:g}%" + (f" {fmt(self.pct / 100 * abs(baseline.median))} {unit}"
                                             if self.abs or self.noise_k and baseline.n > 1 else ""))
        if self.abs:
            parts.append(f"abs {fmt(self.abs)} {unit}")
        if self.noise_k and baseline.n > 1:  # a single baseline run measured no noise
            parts.append(f"{self.noise_k:g} x spread {fmt(baseline.spread)} {unit}")
        if not parts:
            return "exact"
        return f"{fmt(self.allowed(baseline))} {unit} = " + (parts[0] if len(parts) == 1 else f"max({', '.join(parts)})")


RULE_KEYS = [f.name for f in fields(Rule)]


@dataclass(frozen=True)
class Contention:
    """When a run's times are not its own: wall time above `wall_over_cpu` x CPU time AND more than
    `off_cpu_s` seconds above it (see [contention] in harness/thresholds.toml)."""

    wall_over_cpu: float
    off_cpu_s: float

    def of(self, wall_s: float, cpu_s: float, idle_cpu_s: float | None = None) -> str | None:
        """Why a run of this wall and CPU time is contended, or None. `idle_cpu_s` (known for re-runs
        only): CPU seconds the machine's cores sat idle meanwhile; if they cover the run's time off
        the CPU, the run waited on itself (a sleep, I/O), not for a CPU."""
        off = wall_s - cpu_s
        if wall_s <= self.wall_over_cpu * cpu_s or off <= self.off_cpu_s:
            return None
        if idle_cpu_s is not None and idle_cpu_s >= off:
            return None
        idle = f", {fmt(idle_cpu_s)} s of idle CPU" if idle_cpu_s is not None else ""
        return f"contended: wall {fmt(wall_s)} s, CPU {fmt(cpu_s)} s{idle}"


CONTENTION_KEYS = [f.name for f in fields(Contention)]


@dataclass
class Thresholds:
    metrics: dict[str, Rule]
    overrides: list[tuple[str, dict[str, dict[str, Any]]]]  # (pattern, {metric: {key: value}}), in file order
    contention: Contention
    sources: list[str]

    def rule(self, strategy: str, task: str, metric: str) -> Rule:
        rule = self.metrics[metric]
        for pattern, by_metric in self.overrides:
            target = f"{strategy}/{task}" if "/" in pattern else strategy
            if metric in by_metric and fnmatchcase(target, pattern):
                rule = replace(rule, **by_metric[metric])
        return rule


def _number(where: str, v: Any, minimum: float = 0.0) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < minimum:
        raise HarnessError(f"{where} must be a number >= {minimum:g}, not {v!r}")
    return float(v)


def _rule_fields(where: str, value: Any, metric: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HarnessError(f"{where}.{metric} must be a table like {{ pct = 10 }}, not {value!r}")
    out = {}
    for key, v in value.items():
        if key not in RULE_KEYS:
            raise unknown(f"key in {where}.{metric}", key, RULE_KEYS)
        if key == "normalise":
            if not isinstance(v, bool):
                raise HarnessError(f"{where}.{metric}.normalise must be true or false, not {v!r}")
            if v and not is_time(METRICS[metric]):
                raise HarnessError(f"{where}.{metric}.normalise applies to times only (unit s), "
                                   f"not to {metric} ({METRICS[metric].unit})")
            out[key] = v
        else:
            out[key] = _number(f"{where}.{metric}.{key}", v)
    return out


def _metric_table(where: str, table: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(table, dict):
        raise HarnessError(f"{where} must be a table of metrics")
    for metric in table:
        if metric not in METRICS:
            raise unknown(f"metric in {where}", metric, list(METRICS))
    return {metric: _rule_fields(where, value, metric) for metric, value in table.items()}


def _contention_table(where: str, table: Any) -> dict[str, float]:
    if not isinstance(table, dict):
        raise HarnessError(f"{where} must be a table like {{ wall_over_cpu = 1.25, off_cpu_s = 1 }}")
    for key in table:
        if key not in CONTENTION_KEYS:
            raise unknown(f"key in {where}", key, CONTENTION_KEYS)
    return {key: _number(f"{where}.{key}", v, 1.0 if key == "wall_over_cpu" else 0.0) for key, v in table.items()}


TABLES = ["metrics", "strategies", "contention"]


def _read(path: Path) -> dict[str, Any]:
    data = read_toml(path, "thresholds file")
    for key in data:
        if key not in TABLES:
            raise unknown(f"table in thresholds file {path}", key, TABLES)
    return data


def load_thresholds(path: str | Path | None = None) -> Thresholds:
    """The shipped thresholds, with the file at `path` (if any) layered over them."""
    merged: dict[str, dict[str, Any]] = {}
    overrides: list[tuple[str, dict[str, dict[str, Any]]]] = []
    contention: dict[str, float] = {}
    sources = [DEFAULT_THRESHOLDS] + ([Path(path)] if path else [])
    for src in sources:
        data = _read(src)
        for metric, keys in _metric_table(f"{src}: [metrics]", data.get("metrics", {})).items():
            merged.setdefault(metric, {}).update(keys)
        strategies = data.get("strategies", {})
        if not isinstance(strategies, dict):
            raise HarnessError(f"{src}: [strategies] must hold tables like [strategies.\"GRPO*\"]")
        for pattern, table in strategies.items():
            overrides.append((pattern, _metric_table(f"{src}: [strategies.{pattern!r}]", table)))
        contention.update(_contention_table(f"{src}: [contention]", data.get("contention", {})))
    missing = [m for m in METRICS if m not in merged] + [f"contention.{k}" for k in CONTENTION_KEYS
                                                         if k not in contention]
    if missing:
        raise HarnessError(f"thresholds: no rule for {', '.join(missing)} in {DEFAULT_THRESHOLDS}")
    return Thresholds(metrics={m: Rule(**merged[m]) for m in METRICS}, overrides=overrides,
                      contention=Contention(**contention), sources=[str(s) for s in sources])


# --------------------------------------------------------------------------- figures check can use


def _unusable(value: Any, positive: bool) -> str | None:
    """Why `value` is no measured figure (None if it is one): NaN, Infinity, negative, huge."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{type(value).__name__}, not a number"
    if isinstance(value, int) and abs(value) > MAX_FIGURE:  # str() of a 5,000-digit integer raises
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    if not math.isfinite(value) or value < 0 or value > MAX_FIGURE or (positive and value == 0):
        return repr(value)
    return None


def refuse_bad_numbers(x: Loaded) -> None:
    """Every figure `check` computes with is finite, from 0 to MAX_FIGURE, and the calibration above 0;
    else a one-line HarnessError naming the file and the field (exit 2). harness.load refuses most of
    these when the file is read; this makes sure no arithmetic below ever meets one."""
    cal = x.report.calibration
    if cal is not None and (why := _unusable(cal.seconds, positive=True)):
        raise HarnessError(f"cannot check: {x.path}: calibration.seconds is {why}; it must be a number of "
                           "seconds above 0 (re-run the bench)")
    for i, run in enumerate(x.report.runs):
        for name in METRICS:
            value = getattr(run, name)
            if value is not None and (why := _unusable(value, positive=False)):
                raise HarnessError(f"cannot check: {x.path}: runs.{i}.{name} ({run.run_id}) is {why}; a "
                                   f"measured figure must be a finite number from 0 to {MAX_FIGURE:g}")


# --------------------------------------------------------------------------- findings

COUNTED, UNCONFIRMED, CONFIRMED, CLEARED = "counted", "unconfirmed", "confirmed", "cleared"


@dataclass
class Finding:
    """One metric (or the status) of one strategy/task beyond its threshold, and whether it counts."""

    key: Key
    metric: str  # a METRICS name, or "status"
    regressed: bool  # else improved
    text: str  # "COPRO/math lm_calls: baseline 311 calls, current 404 calls, ratio 1.30 (allowed exact)"
    flag: str | None = None  # why it needs re-runs before it counts: another machine, a contended run
    verdict: str = COUNTED  # COUNTED, UNCONFIRMED, CONFIRMED (by re-runs) or CLEARED (by re-runs)
    rerun: str | None = None  # what the re-runs measured, or why there were none

    @property
    def counts(self) -> bool:
        return self.verdict in (COUNTED, CONFIRMED)

    @property
    def line(self) -> str:
        what = "regressed" if self.regressed else "improved"
        if self.verdict == COUNTED:
            return f"{what}: {self.text}"
        if self.verdict == CONFIRMED:
            return f"{what} (confirmed by {self.rerun}): {self.text}"
        if self.verdict == CLEARED:
            return f"cleared by {self.rerun}: was {what}: {self.text}"
        return f"unconfirmed ({'; '.join(filter(None, [self.flag, self.rerun]))}; not counted): {what}: {self.text}"


@dataclass
class Outcome:
    findings: list[Finding]
    compared: int  # metric comparisons made
    pairs: int  # strategy/task pairs compared
    notes: list[str]

    @property
    def regressions(self) -> list[Finding]:
        """Regressions that count: exit 1."""
        return [f for f in self.findings if f.regressed and f.counts]

    @property
    def improvements(self) -> list[Finding]:
        return [f for f in self.findings if not f.regressed and f.counts]

    def with_verdict(self, verdict: str) -> list[Finding]:
        return [f for f in self.findings if f.verdict == verdict]


def _status_finding(b: Group, c: Group) -> Finding | None:
    name = f"{b.strategy}/{b.task} status"
    if b.all_ok and not c.all_ok:
        why = f": {c.errors[0][:160]}" if c.errors else ""
        return Finding(b.key, "status", True, f"{name}: baseline ok, current {c.status_text()}{why}")
    if not b.all_ok and c.all_ok:
        return Finding(b.key, "status", False, f"{name}: baseline {b.status_text()}, current ok")
    return None


def _side(metric: Metric, bs: Stat, value: float, allowed: float) -> int:
    """+1 worse than allowed, -1 better than allowed, 0 inside."""
    worse = value - bs.median if metric.lower_is_better else bs.median - value
    tolerance = 1e-9 * max(abs(bs.median), abs(value))  # float noise of sums and prices
    return 0 if abs(worse) <= allowed + tolerance else (1 if worse > 0 else -1)


def judge(metric: Metric, rule: Rule, bs: Stat, cs: Stat, scale: float | None) -> int:
    """+1 regressed, -1 improved, 0 inside the threshold. With a calibration `scale` (times), judged both
    raw and scaled to the baseline's calibration, and only where both agree: the calibration (a 40 ms
    workload) is right about a machine twice as slow but misjudges the drift of one VM's speed (seen
    here: 34 ms before one bench, 54 ms before the next, with runs up to 1.56x slower)."""
    allowed = rule.allowed(bs)
    side = _side(metric, bs, cs.median * scale if scale is not None else cs.median, allowed)
    if scale is not None and _side(metric, bs, cs.median, allowed) != side:
        return 0
    return side


def _ratio(bs: Stat, cs: Stat, scale: float | None) -> str:
    if not bs.median:
        return "n/a (baseline 0)"
    if scale is None or scale == 1:
        return f"{cs.median / bs.median:.2f}"
    return f"{cs.median * scale / bs.median:.2f} ({cs.median / bs.median:.2f} raw)"


def _metric_finding(b: Group, c: Group, name: str, rule: Rule, scale: float | None) -> Finding | None:
    metric, bs, cs = METRICS[name], b.stats[name], c.stats[name]
    side = judge(metric, rule, bs, cs, scale)
    if side == 0:
        return None
    unit = metric.unit
    shown = f"{fmt(cs.median)} {unit}"
    if scale is not None and scale != 1:
        shown += f" ({fmt(cs.median * scale)} {unit} at the baseline's calibration)"
    text = (f"{b.strategy}/{b.task} {name}: baseline {fmt(bs.median)} {unit}, current {shown}, ratio "
            f"{_ratio(bs, cs, scale)} (allowed {rule.describe(bs, unit)})")
    return Finding(b.key, name, side > 0, text)


def calibration_scale(baseline: Calibration | None, current: Calibration | None) -> float | None:
    """baseline seconds / current seconds: a current time times this is at the baseline machine's speed.
    None where a calibration is missing or the ratio is no usable number."""
    if baseline is None or current is None or not baseline.seconds > 0 or not current.seconds > 0:
        return None
    scale = baseline.seconds / current.seconds
    return scale if math.isfinite(scale) and scale > 0 else None


# --------------------------------------------------------------------------- the check


def _same_setup(b_rep: Report, c_rep: Report) -> None:
    for name, what in (("profile", "profiles"), ("lm", "LMs")):
        if getattr(b_rep, name) != getattr(c_rep, name):
            raise HarnessError(f"cannot check: different {what}, baseline {getattr(b_rep, name)!r} and current "
                               f"{getattr(c_rep, name)!r} (bench the current with the baseline's)")


def _pairs(baseline: Loaded, current: Loaded, only_present: bool) -> tuple[dict[Key, Group], dict[Key, Group],
                                                                               list[str]]:
    """The baseline's and the current's groups to compare, and notes on the pairs left out."""
    every, cur = groups(baseline.report.runs), groups(current.report.runs)
    base, notes = every, []
    missing = [f"{s}/{t}" for (s, t) in base if (s, t) not in cur]
    if missing and not only_present:
        raise HarnessError(f"cannot check: the current report {current.path} has no record of {len(missing)} "
                           f"strategy/task pair(s) of the baseline: {', '.join(missing)} (bench them too, make a "
                           "baseline with the same STRATEGY and TASK, or pass --only-present)")
    if missing:
        notes.append(f"--only-present: not checked, not in the current report: {len(missing)} pair(s) of the "
                     f"baseline ({', '.join(missing)})")
        base = {k: g for k, g in base.items() if k in cur}
    new = [f"{s}/{t}" for (s, t) in cur if (s, t) not in every]
    if new:
        notes.append(f"not checked, no baseline: {', '.join(new)}")
    return base, cur, notes


JOBS_BOUND = ("wall_s", "cpu_s")  # times that depend on how many runs shared the machine (--jobs)


def jobs_of(report: Report) -> int:
    """How many runs the report's bench ran at once (--jobs): the most any of its runs says."""
    return max((r.jobs for r in report.runs), default=1)


def _machine_flag(b_rep: Report, c_rep: Report) -> str | None:
    b_id, c_id = b_rep.machine.machine_id, c_rep.machine.machine_id
    return None if b_id == c_id else f"baseline from machine {b_id}, current {c_id}"


def _contended(c: Group, contention: Contention) -> str | None:
    wall, cpu = c.stats["wall_s"], c.stats["cpu_s"]
    return None if wall is None or cpu is None else contention.of(wall.median, cpu.median)


def _flag(name: str, machine_flag: str | None, contended: str | None) -> str | None:
    """Why a finding on `name` counts only once re-runs confirm it, or None: it counts as it is."""
    metric = METRICS[name]
    if metric.stack_only:
        return None
    return "; ".join(filter(None, [machine_flag, contended if is_time(metric) else None])) or None


def evaluate(baseline: Loaded, current: Loaded, thresholds: Thresholds, only_present: bool = False) -> Outcome:
    """Compare two loaded reports under the thresholds. Raises HarnessError when they cannot be compared."""
    b_rep, c_rep = baseline.report, current.report
    for x in (baseline, current):
        refuse_bad_numbers(x)
    _same_setup(b_rep, c_rep)
    base, cur, notes = _pairs(baseline, current, only_present)
    notes = context_notes([baseline, current]) + notes
    scale = calibration_scale(b_rep.calibration, c_rep.calibration)
    machine_flag = _machine_flag(b_rep, c_rep)
    b_jobs, c_jobs = jobs_of(b_rep), jobs_of(c_rep)
    findings, compared, single, contended_pairs = [], 0, False, []
    for key, b in base.items():
        c = cur[key]
        if (f := _status_finding(b, c)) is not None:
            findings.append(f)
        contended = _contended(c, thresholds.contention)
        if contended:
            contended_pairs.append(f"{b.strategy}/{b.task} ({contended.split(': ', 1)[1]})")
        for name in METRICS:
            if b.stats[name] is None or c.stats[name] is None or (name in JOBS_BOUND and b_jobs != c_jobs):
                continue
            rule = thresholds.rule(b.strategy, b.task, name)
            single |= bool(rule.noise_k) and b.stats[name].n < 2
            compared += 1
            if (f := _metric_finding(b, c, name, rule, scale if rule.normalise else None)) is not None:
                f.flag = _flag(name, machine_flag, contended)
                f.verdict = UNCONFIRMED if f.flag else COUNTED
                findings.append(f)
    if b_jobs != c_jobs:
        notes.append(f"wall and CPU times not checked: the baseline ran {b_jobs} run(s) at once, the current report "
                     f"{c_jobs} (--jobs): runs sharing the CPUs take longer and, counted exactly per run, more CPU "
                     "(README: parallel runs); RAM, disk, calls, tokens, spend and scores are checked")
    notes += _rule_notes(b_rep, c_rep, scale, single, machine_flag, contended_pairs)
    return Outcome(findings=findings, compared=compared, pairs=len(base), notes=notes)


def _rule_notes(b_rep: Report, c_rep: Report, scale: float | None, single: bool, machine_flag: str | None,
                contended_pairs: list[str]) -> list[str]:
    notes = []
    if machine_flag:
        notes.append(f"{machine_flag}: times, RAM, GPU memory and disk count only once re-runs here confirm them "
                     "(check --confirm; or make a baseline on this machine: make baseline)")
    if contended_pairs:
        notes.append(f"contended runs in the current report (wall far above CPU): {', '.join(contended_pairs)}: "
                     "their times count only once re-runs confirm them (check --confirm)")
    if single:
        notes.append("the baseline has single runs: no measured noise, so times use only their pct/abs floor "
                     "(make baseline runs 3 repeats)")
    if scale is None:
        notes.append("a report has no calibration: times compared raw")
    elif abs(math.log(scale)) > math.log(1.2):
        notes.append(f"the calibrations differ {1 / scale:.2f}x ({b_rep.calibration.seconds:.4g} s baseline, "
                     f"{c_rep.calibration.seconds:.4g} s current): a time counts only where its raw and its "
                     "calibrated comparison agree")
    return notes


# --------------------------------------------------------------------------- confirming by re-runs


@dataclass(frozen=True)
class Rerun:
    """One re-run of a flagged pair, and the CPU seconds the machine's cores sat idle while it ran."""

    record: RunRecord
    idle_cpu_s: float | None = None


Rerunner = Callable[[RunSpec, Path], Rerun]


def _idle_s(times: Any) -> float:
    return times.idle + getattr(times, "iowait", 0.0)


def measured_rerun(spec: RunSpec, out: Path) -> Rerun:
    """run_one, and the machine's idle CPU time over it (psutil.cpu_times, summed over the cores)."""
    before = psutil.cpu_times()
    record = run_one(spec, out, progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    return Rerun(record, max(0.0, _idle_s(psutil.cpu_times()) - _idle_s(before)))


def rerun_spec(report: Report, rec: RunRecord, repeat: int) -> RunSpec:
    """What re-runs `rec` as its bench ran it: same profile, limits, prices, student and GEPA budget."""
    options = {"student": rec.training.student, "mode": rec.training.mode} if rec.training else {}
    if rec.budget is not None:  # GEPA: the budget it was asked for
        options.update({k: v for k, v in (("auto", rec.budget.auto),
                                          ("max_metric_calls", rec.budget.max_metric_calls_asked)) if v is not None})
    return RunSpec(strategy=rec.strategy, task=rec.task, profile=report.profile, repeat=repeat,
                   price_as=report.priced_as, timeout_s=rec.timeout_s, max_rss_mb=rec.max_rss_mb, options=options)


def confirm_dir(current: Loaded) -> Path:
    """<current bench folder>/confirm/<UTC time>/: a new folder each time, so no earlier re-run is lost."""
    path = Path(current.path)
    return (path if path.is_dir() else path.parent) / "confirm" / utcnow().strftime("%Y%m%dT%H%M%S.%fZ")


def _settle(f: Finding, b: Group, reruns: list[Rerun], thresholds: Thresholds, scale: float | None) -> None:
    """Confirm or clear one unconfirmed regression from its pair's re-runs (medians), or say why not."""
    metric = METRICS[f.metric]
    ok = [r for r in reruns if r.record.status == "ok"]
    if not ok:
        first = reruns[0].record
        f.rerun = f"re-runs not ok: {first.status}{': ' + first.error[:160] if first.error else ''}"
        return
    if is_time(metric):
        why = [thresholds.contention.of(r.record.wall_s, r.record.cpu_s, r.idle_cpu_s) for r in ok]
        if all(why):
            f.rerun = f"re-runs {why[0]} too"
            return
        ok = [r for r, w in zip(ok, why) if w is None]
    cs = groups([r.record for r in ok])[f.key].stats[f.metric]
    if cs is None:
        f.rerun = "re-runs did not measure it"
        return
    rule = thresholds.rule(*f.key, f.metric)
    scale = scale if rule.normalise else None
    bs = b.stats[f.metric]
    f.rerun = (f"{len(ok)} re-run{'s' if len(ok) > 1 else ''} here: median {fmt(cs.median)} {metric.unit}, "
               f"ratio {_ratio(bs, cs, scale)}")
    f.verdict = CONFIRMED if judge(metric, rule, bs, cs, scale) > 0 else CLEARED


def confirm(outcome: Outcome, baseline: Loaded, current: Loaded, thresholds: Thresholds, out: Path,
            rerun: Rerunner = measured_rerun, calibrate: Callable[[], Calibration] = machine.calibrate,
            n: int = DEFAULT_RERUNS) -> None:
    """Re-run `n` times each pair with an unconfirmed regression, into `out`, and confirm or clear them."""
    pending = [f for f in outcome.findings if f.regressed and f.verdict == UNCONFIRMED]
    keys = list(dict.fromkeys(f.key for f in pending))
    if not keys:
        return
    records = {r.key: r for r in reversed(current.report.runs)}  # the first record of each pair
    if any(records[k].lm_kind != "offline" for k in keys):
        for f in pending:
            f.rerun = ("not re-run: not the in-process offline LM (a hosted LM's re-runs cost money, a served one "
                       "needs its server: re-run the pair by hand)")
        return
    cal = calibrate()
    scale = calibration_scale(baseline.report.calibration, cal)
    base = groups(baseline.report.runs)
    print(f"check: re-running {len(keys)} pair(s) {n}x into {out} to confirm {len(pending)} finding(s); "
          f"calibration now {cal.seconds * 1000:.1f} ms", file=sys.stderr, flush=True)
    with OutLock(out), stop_on_signals():
        for key in keys:
            reruns = [rerun(rerun_spec(current.report, records[key], i), out) for i in range(n)]
            for f in pending:
                if f.key == key:
                    _settle(f, base[key], reruns, thresholds, scale)
    outcome.notes.append(f"re-ran {len(keys)} pair(s) {n}x into {out}, judged at a calibration of "
                         f"{cal.seconds:.4g} s timed before them")


# --------------------------------------------------------------------------- output


def summary(outcome: Outcome, baseline: Loaded, current: Loaded, thresholds: Thresholds) -> str:
    n_reg, n_imp = len(outcome.regressions), len(outcome.improvements)
    n_unc, n_conf, n_clr = (len(outcome.with_verdict(v)) for v in (UNCONFIRMED, CONFIRMED, CLEARED))
    verdict = "check FAILED" if n_reg else "check passed"
    return (f"{verdict}: {_plural(n_reg, 'regression')}, {_plural(n_imp, 'improvement')} in {outcome.compared} "
            f"comparisons ({outcome.pairs} strategy/task pairs) of {current.path} against {baseline.path}; "
            f"{n_unc} unconfirmed (not counted), {n_conf} confirmed and {n_clr} cleared by re-runs; "
            f"{RULE_SUMMARY}; thresholds: {' + '.join(_short(s) for s in thresholds.sources)}"
            + ("; to adopt the improvements: make baseline" if n_imp and not n_reg else ""))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _short(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


ORDER = {CONFIRMED: 0, COUNTED: 1, UNCONFIRMED: 2, CLEARED: 3}


def run_check(args: Any) -> int:
    reruns = getattr(args, "reruns", DEFAULT_RERUNS)
    if reruns < 1:
        raise HarnessError(f"--reruns must be 1 or more, got {reruns}")
    thresholds = load_thresholds(args.thresholds)
    baseline, current = load(args.baseline, "baseline"), load(args.current, "current")
    outcome = evaluate(baseline, current, thresholds, only_present=getattr(args, "only_present", False))
    if getattr(args, "confirm", False):
        confirm(outcome, baseline, current, thresholds, confirm_dir(current), n=reruns)
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    for f in sorted(outcome.findings, key=lambda f: (not f.regressed, ORDER[f.verdict])):
        print(f.line)
    print(summary(outcome, baseline, current, thresholds))
    return 1 if outcome.regressions else 0


def main_check(args: Any) -> int:
    """`check`: exit 1 only for a counted regression; anything unexpected is exit 2, never 1."""
    try:
        return run_check(args)
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - an unexpected error is "could not check", not "regressed"
        if getattr(args, "debug", False):
            raise
        raise HarnessError(f"check could not be made: unexpected {type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:300]} (run with --debug for the traceback)") from exc
