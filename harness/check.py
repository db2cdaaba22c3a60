"""`python -m harness check`: exit 1 when a resource cost regressed beyond its threshold.

The thresholds and the rule are in ``harness/thresholds.toml`` (documented there); a file given
with ``--thresholds`` is layered over it. Exit codes: 0 nothing regressed, 1 something regressed,
2 the check could not be made (bad input, a baseline pair missing from the current report).
"""

from __future__ import annotations

import math
import sys
import tomllib
from dataclasses import dataclass, fields, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from harness.aggregate import Group, Stat, groups
from harness.compare import Loaded, context_notes, fmt, is_time, load
from harness.errors import HarnessError, unknown
from harness.record import METRICS

DEFAULT_THRESHOLDS = Path(__file__).with_name("thresholds.toml")
RULE_SUMMARY = ("rule: regressed = median worse than the baseline's by more than max(pct % of it, abs, "
                "noise_k x max-min of the baseline's repeats); a time only when it is so both raw and scaled "
                "to the baseline's calibration")


# --------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Rule:
    """How much worse a metric may get: see harness/thresholds.toml."""

    pct: float = 0.0
    abs: float = 0.0
    noise_k: float = 0.0
    normalise: bool = False

    def allowed(self, baseline: Stat) -> float:
        return max(self.pct / 100 * abs(baseline.median), self.abs, self.noise_k * baseline.spread)

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


@dataclass
class Thresholds:
    metrics: dict[str, Rule]
    overrides: list[tuple[str, dict[str, dict[str, Any]]]]  # (pattern, {metric: {key: value}}), in file order
    sources: list[str]

    def rule(self, strategy: str, task: str, metric: str) -> Rule:
        rule = self.metrics[metric]
        for pattern, by_metric in self.overrides:
            target = f"{strategy}/{task}" if "/" in pattern else strategy
            if metric in by_metric and fnmatchcase(target, pattern):
                rule = replace(rule, **by_metric[metric])
        return rule


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
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < 0:
            raise HarnessError(f"{where}.{metric}.{key} must be a number >= 0, not {v!r}")
        out[key] = float(v) if key != "normalise" else v
    return out


def _metric_table(where: str, table: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(table, dict):
        raise HarnessError(f"{where} must be a table of metrics")
    for metric in table:
        if metric not in METRICS:
            raise unknown(f"metric in {where}", metric, list(METRICS))
    return {metric: _rule_fields(where, value, metric) for metric, value in table.items()}


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise HarnessError(f"thresholds file {path} does not exist") from None
    except IsADirectoryError:
        raise HarnessError(f"thresholds file {path} is a directory") from None
    except OSError as exc:
        raise HarnessError(f"thresholds file {path} cannot be read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"thresholds file {path} is not valid TOML: {exc}") from None
    for key in data:
        if key not in ("metrics", "strategies"):
            raise unknown(f"table in thresholds file {path}", key, ["metrics", "strategies"])
    return data


def load_thresholds(path: str | Path | None = None) -> Thresholds:
    """The shipped thresholds, with the file at `path` (if any) layered over them."""
    merged: dict[str, dict[str, Any]] = {}
    overrides: list[tuple[str, dict[str, dict[str, Any]]]] = []
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
    missing = [m for m in METRICS if m not in merged]
    if missing:
        raise HarnessError(f"thresholds: no rule for {', '.join(missing)} in {DEFAULT_THRESHOLDS}")
    return Thresholds(metrics={m: Rule(**merged[m]) for m in METRICS}, overrides=overrides,
                      sources=[str(s) for s in sources])


# --------------------------------------------------------------------------- the check


@dataclass
class Finding:
    regressed: bool
    line: str


@dataclass
class Outcome:
    findings: list[Finding]
    compared: int  # metric comparisons made
    pairs: int  # strategy/task pairs compared
    notes: list[str]

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.regressed]

    @property
    def improvements(self) -> list[Finding]:
        return [f for f in self.findings if not f.regressed]


def _status_finding(b: Group, c: Group) -> Finding | None:
    name = f"{b.strategy}/{b.task} status"
    if b.all_ok and not c.all_ok:
        why = f": {c.errors[0][:160]}" if c.errors else ""
        return Finding(True, f"regressed: {name}: baseline ok, current {c.status_text()}{why}")
    if not b.all_ok and c.all_ok:
        return Finding(False, f"improved: {name}: baseline {b.status_text()}, current ok")
    return None


def _metric_finding(b: Group, c: Group, name: str, rule: Rule, scale: float | None) -> Finding | None:
    metric = METRICS[name]
    bs, cs = b.stats[name], c.stats[name]
    current = cs.median * scale if scale is not None else cs.median
    allowed = rule.allowed(bs)

    def beyond(value: float) -> int:
        """+1 worse than allowed, -1 better than allowed, 0 inside."""
        worse = value - bs.median if metric.lower_is_better else bs.median - value
        tolerance = 1e-9 * max(abs(bs.median), abs(value))  # float noise of sums and prices
        return 0 if abs(worse) <= allowed + tolerance else (1 if worse > 0 else -1)

    # A time is judged both raw and per calibration second, and counts only when both agree. The
    # calibration (a 40 ms workload) is right about a machine twice as slow, but misjudges the drift of
    # one VM's speed: seen here, 34 ms before one bench and 54 ms before the next while the runs
    # were up to 1.56x slower, so that scaled times "improved" and raw ones "regressed".
    side = beyond(current)
    if side == 0 or (scale is not None and beyond(cs.median) != side):
        return None
    unit = metric.unit
    shown = f"{fmt(cs.median)} {unit}"
    ratio = f"{current / bs.median:.2f}" if bs.median else "n/a (baseline 0)"
    if scale is not None and scale != 1:
        shown += f" ({fmt(current)} {unit} at the baseline's calibration)"
        ratio += f" ({cs.median / bs.median:.2f} raw)" if bs.median else ""
    regressed = side > 0
    line = (f"{'regressed' if regressed else 'improved'}: {b.strategy}/{b.task} {name}: baseline {fmt(bs.median)} "
            f"{unit}, current {shown}, ratio {ratio} (allowed {rule.describe(bs, unit)})")
    return Finding(regressed, line)


def evaluate(baseline: Loaded, current: Loaded, thresholds: Thresholds) -> Outcome:
    """Compare two loaded reports under the thresholds. Raises HarnessError when they cannot be compared."""
    b_rep, c_rep = baseline.report, current.report
    for field, what in (("profile", "profiles"), ("lm", "LMs")):
        if getattr(b_rep, field) != getattr(c_rep, field):
            raise HarnessError(f"cannot check: different {what}, baseline {getattr(b_rep, field)!r} and current "
                               f"{getattr(c_rep, field)!r} (bench the current with the baseline's)")
    base, cur = groups(b_rep.runs), groups(c_rep.runs)
    missing = [f"{s}/{t}" for (s, t) in base if (s, t) not in cur]
    if missing:
        raise HarnessError(f"cannot check: the current report {current.path} has no record of {len(missing)} "
                           f"strategy/task pair(s) of the baseline: {', '.join(missing)} (bench them too, or "
                           "make a baseline with the same STRATEGY and TASK)")
    notes = context_notes([baseline, current])
    new = [f"{s}/{t}" for (s, t) in cur if (s, t) not in base]
    if new:
        notes.append(f"not checked, no baseline: {', '.join(new)}")
    calibrated = b_rep.calibration is not None and c_rep.calibration is not None
    single = False
    findings, compared = [], 0
    for key, b in base.items():
        c = cur[key]
        if (f := _status_finding(b, c)) is not None:
            findings.append(f)
        for name, metric in METRICS.items():
            if b.stats[name] is None or c.stats[name] is None:
                continue
            rule = thresholds.rule(b.strategy, b.task, name)
            scale = None
            if rule.normalise and calibrated:
                scale = b_rep.calibration.seconds / c_rep.calibration.seconds
            single |= bool(rule.noise_k) and b.stats[name].n < 2
            compared += 1
            if (f := _metric_finding(b, c, name, rule, scale)) is not None:
                findings.append(f)
    if single:
        notes.append("the baseline has single runs: no measured noise, so times use only their pct/abs floor "
                     "(make baseline runs 3 repeats)")
    if not calibrated:
        notes.append("a report has no calibration: times compared raw")
    elif abs(math.log(b_rep.calibration.seconds / c_rep.calibration.seconds)) > math.log(1.2):
        notes.append(f"the calibrations differ {c_rep.calibration.seconds / b_rep.calibration.seconds:.2f}x "
                     f"({b_rep.calibration.seconds:.4g} s baseline, {c_rep.calibration.seconds:.4g} s current): a "
                     "time counts only where its raw and its calibrated comparison agree")
    return Outcome(findings=findings, compared=compared, pairs=len(base), notes=notes)


def summary(outcome: Outcome, baseline: Loaded, current: Loaded, thresholds: Thresholds) -> str:
    n_reg, n_imp = len(outcome.regressions), len(outcome.improvements)
    verdict = "check FAILED" if n_reg else "check passed"
    return (f"{verdict}: {_plural(n_reg, 'regression')}, {_plural(n_imp, 'improvement')} in {outcome.compared} "
            f"comparisons ({outcome.pairs} strategy/task pairs) of {current.path} against {baseline.path}; "
            f"{RULE_SUMMARY}; thresholds: {' + '.join(_short(s) for s in thresholds.sources)}"
            + ("; to adopt the improvements: make baseline" if n_imp and not n_reg else ""))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _short(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def main_check(args: Any) -> int:
    thresholds = load_thresholds(args.thresholds)
    baseline, current = load(args.baseline, "baseline"), load(args.current, "current")
    outcome = evaluate(baseline, current, thresholds)
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    for f in outcome.regressions + outcome.improvements:
        print(f.line)
    print(summary(outcome, baseline, current, thresholds))
    return 1 if outcome.regressions else 0
