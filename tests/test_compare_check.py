"""`compare`, `check`, thresholds and the report schema migration; fast: one real re-run of a cheap pair.

Reports are edited copies of tests/fixtures/quick_report.json (a trimmed real quick report: 7 runs,
no timelines) or of the committed results/baseline (3 repeats of the quick suite). User errors are
checked through `python -m harness` in a subprocess: one line on stderr, exit 2, no traceback.
`check --confirm` is tested with an injected re-run function, and once end to end with a real
re-run of LabeledFewShot/math (a few seconds).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli
from harness.aggregate import Stat, groups
from harness.check import (CLEARED, CONFIRMED, UNCONFIRMED, Rerun, Rule, confirm, evaluate, load_thresholds,
                           refuse_bad_numbers)
from harness.compare import build_rows
from harness.context import context_notes, load
from harness.errors import HarnessError
from harness.load import SchemaError, load_record, load_report
from harness.record import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "quick_report.json"
BASE = json.loads(FIXTURE.read_text())


def report(**top) -> dict:
    data = copy.deepcopy(BASE)
    data.update(top)
    return data


def runs_of(data: dict, strategy: str, task: str | None = None) -> list[dict]:
    return [r for r in data["runs"] if r["strategy"] == strategy and (task is None or r["task"] == task)]


def write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def with_repeats(data: dict, strategy: str, task: str, field: str | tuple[str, ...], values: list[float]) -> dict:
    """Replace the one run of strategy/task by len(values) repeats whose `field` (or fields) take `values`."""
    names = (field,) if isinstance(field, str) else field
    (run,) = runs_of(data, strategy, task)
    i = data["runs"].index(run)
    reps = []
    for n, v in enumerate(values):
        rep = copy.deepcopy(run)
        rep.update(repeat=n, run_id=f"{strategy}__{task}__r{n}", **{name: v for name in names})
        reps.append(rep)
    data["runs"][i:i + 1] = reps
    return data


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and "\n" not in err, proc.stderr
    assert err.startswith("error: "), err
    for w in words:
        assert w in err, (w, err)


def check(tmp_path: Path, baseline: dict, current: dict, thresholds: str | None = None):
    b, c = write(tmp_path, "baseline.json", baseline), write(tmp_path, "current.json", current)
    th = None
    if thresholds is not None:
        th = tmp_path / "thresholds.toml"
        th.write_text(thresholds)
    return evaluate(load(b, "baseline"), load(c, "current"), load_thresholds(th))


def lines(outcome, prefix: str) -> list[str]:
    return [f.line for f in outcome.findings if f.line.startswith(prefix)]


# --------------------------------------------------------------------------- schema


def test_fixture_loads_at_the_current_schema():
    rep = load_report(FIXTURE)
    assert rep.schema_version == SCHEMA_VERSION
    agg = groups(rep.runs)
    assert agg[("COPRO", "math")].stats["lm_calls"].median == 311
    assert agg[("SignatureOptimizer", "math")].statuses == {"failed": 1}
    assert all(s is None for s in agg[("SignatureOptimizer", "math")].stats.values())


def test_v1_report_migrates(tmp_path):
    data = report(schema_version=1)
    data.pop("aggregates", None)
    for run in data["runs"]:
        run["schema_version"] = 1
    with_repeats(data, "COPRO", "math", "wall_s", [3.0, 1.0, 2.0])
    rep = load_report(write(tmp_path, "v1.json", data))
    assert rep.schema_version == SCHEMA_VERSION and all(r.schema_version == SCHEMA_VERSION for r in rep.runs)
    wall = groups(rep.runs)[("COPRO", "math")].stats["wall_s"]
    assert (wall.median, wall.lo, wall.hi, wall.n) == (2.0, 1.0, 3.0, 3)


def test_v1_run_record_migrates(tmp_path):
    run = copy.deepcopy(BASE["runs"][0])
    run["schema_version"] = 1
    rec = load_record(write(tmp_path, "run.json", run))
    assert rec.schema_version == SCHEMA_VERSION and rec.lm_calls == run["lm_calls"]


def test_newer_schema_is_refused(tmp_path):
    path = write(tmp_path, "new.json", report(schema_version=99))
    with pytest.raises(SchemaError, match="update the harness"):
        load_report(path)
    assert_user_error(harness("check", "--baseline", str(FIXTURE), "--current", str(path)),
                      "schema_version 99", "update the harness")


# --------------------------------------------------------------------------- compare


def test_compare_with_itself_shows_no_difference():
    a, b = load(FIXTURE, "A"), load(FIXTURE, "B")
    rows = build_rows([a, b])
    assert len(rows) == 7
    assert not [f for row in rows for f in row.flags]
    assert context_notes([a, b]) == []
    ratios = [c.ratios[1] for row in rows for c in row.cells]
    assert ratios and all(r == 1.0 for r in ratios)


def test_compare_cli_formats(tmp_path):
    proc = harness("compare", str(FIXTURE), str(FIXTURE))
    assert proc.returncode == 0, proc.stderr
    assert "none in 7 strategy/task pairs" in proc.stdout and "DIFFERS" not in proc.stdout
    assert "### COPRO / math" in proc.stdout

    proc = harness("compare", str(FIXTURE), str(FIXTURE), "--format", "json")
    doc = json.loads(proc.stdout)
    assert [r["label"] for r in doc["reports"]] == ["A", "B"]
    assert not any(row["flags"] for row in doc["rows"])

    proc = harness("compare", str(FIXTURE), str(FIXTURE), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert rows and all(r["differs_from_first"] == "False" for r in rows)


def test_compare_flags_stack_metrics_and_different_stacks(tmp_path):
    other = report()
    other["software"]["packages"]["dspy"] = "9.9.9"
    other["machine"]["machine_id"] = "elsewhere"
    other["calibration"]["seconds"] *= 2
    for run in runs_of(other, "COPRO", "math"):
        run["lm_calls"] += 1
        run["wall_s"] *= 2
    path = write(tmp_path, "other.json", other)
    rows = {(r.strategy, r.task): r for r in build_rows([load(FIXTURE, "A"), load(path, "B")])}
    copro = {c.metric.name: c for c in rows[("COPRO", "math")].cells}
    assert copro["lm_calls"].differs and rows[("COPRO", "math")].flags == ["lm_calls differs: 311 (A), 312 (B)"]
    assert copro["wall_s"].ratios[1] == pytest.approx(2.0)
    assert copro["wall_s"].calibrated[1] == pytest.approx(1.0)  # twice the time on a machine twice as slow
    assert not copro["peak_rss_mb"].differs  # machine metrics are never flagged
    assert not rows[("LabeledFewShot", "math")].flags

    proc = harness("compare", str(FIXTURE), str(path))
    assert proc.returncode == 0, proc.stderr
    assert "different stacks: dspy: 3.4.1 (A), 9.9.9 (B)" in proc.stdout
    assert "different machines" in proc.stdout
    assert "COPRO / math: lm_calls differs" in proc.stdout


def test_compare_accepts_a_bench_folder_and_shows_spread(tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    write(out, "report.json", with_repeats(report(), "COPRO", "math", "wall_s", [2.0, 2.5, 3.0]))
    proc = harness("compare", str(FIXTURE), str(out))
    assert proc.returncode == 0, proc.stderr
    assert "| wall_s (s) | 2.38 | 2.50 (2-3, n=3) | 1.05 | 1.05 |" in proc.stdout


@pytest.mark.parametrize("command", ["compare", "check"])
def test_bad_inputs_are_one_line_errors(tmp_path, command):
    bad = {
        "malformed": ("{\"kind\": \"dspy-resource-bench/report\", ", "not valid JSON"),
        "not-a-report": (json.dumps({"hello": "world"}), "not a dspy-resource-bench report"),
        "a-list": ("[1, 2]", "not a JSON object"),
        "wrong-fields": (json.dumps(report(runs=[{"strategy": "x"}])), "does not match the schema"),
    }
    for name, (text, words) in bad.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        args = [str(FIXTURE), str(path)] if command == "compare" else ["--baseline", str(FIXTURE), "--current",
                                                                       str(path)]
        assert_user_error(harness(command, *args), words)
    missing = str(tmp_path / "nope.json")
    args = [str(FIXTURE), missing] if command == "compare" else ["--baseline", missing, "--current", str(FIXTURE)]
    assert_user_error(harness(command, *args), "does not exist")
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    args = [str(FIXTURE), str(empty)] if command == "compare" else ["--baseline", str(FIXTURE), "--current",
                                                                    str(empty)]
    assert_user_error(harness(command, *args), "without report.json")


def test_compare_needs_two_reports():
    assert_user_error(harness("compare", str(FIXTURE)), "2 to 26 reports")


# --------------------------------------------------------------------------- check


def test_check_lm_calls_up_30_percent_fails_and_names_it(tmp_path):
    current = report()
    for run in runs_of(current, "COPRO", "math"):
        run["lm_calls"] = round(run["lm_calls"] * 1.3)
    c = write(tmp_path, "current.json", current)
    proc = harness("check", "--baseline", str(FIXTURE), "--current", str(c))
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout.strip().splitlines()
    assert out[0] == ("regressed: COPRO/math lm_calls: baseline 311 calls, current 404 calls, ratio 1.30 "
                      "(allowed exact)")
    assert out[-1].startswith("check FAILED: 1 regression, 0 improvements")
    assert "Traceback" not in proc.stderr


def test_check_passes_on_itself_with_one_line(tmp_path):
    proc = harness("check", "--baseline", str(FIXTURE), "--current", str(FIXTURE))
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.strip().splitlines()
    assert line.startswith("check passed: 0 regressions, 0 improvements") and "rule:" in line


def test_check_missing_strategy_is_an_error(tmp_path):
    current = report()
    current["runs"] = [r for r in current["runs"] if r["strategy"] != "KNNFewShot"]
    c = write(tmp_path, "current.json", current)
    assert_user_error(harness("check", "--baseline", str(FIXTURE), "--current", str(c)),
                      "KNNFewShot/math", "no record")


def test_check_new_strategy_is_only_a_note(tmp_path):
    baseline = report()
    baseline["runs"] = [r for r in baseline["runs"] if r["strategy"] != "KNNFewShot"]
    outcome = check(tmp_path, baseline, report())
    assert not outcome.findings and any("KNNFewShot/math" in n for n in outcome.notes)


def test_check_different_profile_is_an_error(tmp_path):
    with pytest.raises(HarnessError, match="different profiles"):
        check(tmp_path, report(), report(profile="standard"))


def test_check_lists_improvements_and_passes(tmp_path):
    current = report()
    for run in runs_of(current, "MIPROv2", "math"):
        run["lm_calls"] -= 10
        run["input_tokens"] -= 1000
    c = write(tmp_path, "current.json", current)
    proc = harness("check", "--baseline", str(FIXTURE), "--current", str(c))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip().splitlines()
    assert out[0].startswith("improved: MIPROv2/math lm_calls: baseline 130 calls, current 120 calls, ratio 0.92")
    assert out[1].startswith("improved: MIPROv2/math input_tokens")
    assert out[-1].startswith("check passed: 0 regressions, 2 improvements")


def test_check_status_not_ok_is_a_regression(tmp_path):
    current = report()
    for run in runs_of(current, "COPRO", "math"):
        run.update(status="timeout", error="timed out after 600 s")
    outcome = check(tmp_path, report(), current)
    assert lines(outcome, "regressed:") == [
        "regressed: COPRO/math status: baseline ok, current timeout 1/1: timed out after 600 s"]

    fixed = report()
    for run in runs_of(fixed, "SignatureOptimizer", "math"):
        run.update(status="ok", error=None)
    outcome = check(tmp_path, report(), fixed)
    assert lines(outcome, "improved:") == ["improved: SignatureOptimizer/math status: baseline failed 1/1, current ok"]


def test_check_lower_score_is_a_regression(tmp_path):
    current = report()
    runs_of(current, "COPRO", "math")[0]["score_after"] = 60.0
    outcome = check(tmp_path, report(), current)
    assert [f.line.split(":")[1] for f in outcome.regressions] == [" COPRO/math score_after"]


def test_time_inside_measured_noise_passes_outside_fails(tmp_path):
    # baseline repeats 9, 11, 14 s: median 11, spread 5 s; allowed = max(50% = 5.5 s, 1.5 s, 2 x 5 s) = 10 s
    # (wall and CPU time alike: an uncontended offline run is CPU-bound)
    times = ("wall_s", "cpu_s")
    baseline = with_repeats(report(), "COPRO", "math", times, [9.0, 11.0, 14.0])
    inside = with_repeats(report(), "COPRO", "math", times, [20.5])  # +86%: past the floor, inside the noise
    outcome = check(tmp_path, baseline, inside)
    assert not outcome.findings

    outside = with_repeats(report(), "COPRO", "math", times, [21.5])
    outcome = check(tmp_path, baseline, outside)
    (line,) = lines(outcome, "regressed: COPRO/math wall_s")
    assert line.startswith("regressed: COPRO/math wall_s: baseline 11 s, current 21.50 s, ratio 1.95")
    assert "allowed 10 s = max(50% 5.50 s, abs 1.50 s, 2 x spread 5 s)" in line

    quiet = with_repeats(report(), "COPRO", "math", times, [11.0, 11.0, 11.0])  # no noise: the floor rules
    assert lines(check(tmp_path, quiet, inside), "regressed: COPRO/math wall_s")


def test_time_is_compared_per_calibration_second(tmp_path):
    slower = report()
    slower["calibration"]["seconds"] *= 2
    for run in slower["runs"]:
        run["wall_s"] *= 2
        run["cpu_s"] *= 2
    assert not check(tmp_path, report(), slower).findings  # twice the time on a machine half as fast

    def scaled(cal: float, times: float) -> dict:
        data = report()
        data["calibration"]["seconds"] *= cal
        for run in runs_of(data, "COPRO", "math"):
            run["wall_s"] *= times
            run["cpu_s"] *= times
        return data

    # One VM drifting: the calibration says 2x slower, the runs were 1.8x slower. Raw that is a
    # regression; per calibration second it is not: they disagree, so nothing is reported.
    drift = check(tmp_path, report(), scaled(2.0, 1.8))
    assert not drift.findings and any("calibrations differ 2.00x" in n for n in drift.notes)
    assert lines(check(tmp_path, report(), scaled(1.0, 1.8)), "regressed: COPRO/math wall_s")  # raw alone
    assert lines(check(tmp_path, report(), scaled(1.6, 3.0)), "regressed: COPRO/math wall_s")  # both agree
    assert lines(check(tmp_path, report(), scaled(1.0, 2.0)), "regressed: COPRO/math wall_s")

    no_cal = copy.deepcopy(slower)
    no_cal["calibration"] = None
    outcome = check(tmp_path, report(), no_cal)
    assert lines(outcome, "regressed: COPRO/math wall_s")
    assert any("no calibration" in n for n in outcome.notes)


def test_thresholds_per_strategy_pattern(tmp_path):
    current = report()
    for run in current["runs"]:
        run["lm_calls"] = round(run["lm_calls"] * 1.3)
    toml = '[strategies."COPRO"]\nlm_calls = { pct = 50 }\n[strategies."*/classify"]\nlm_calls = { pct = inf }\n'
    outcome = check(tmp_path, report(), current, toml)
    regressed = {line.split()[1] for line in lines(outcome, "regressed:")}
    assert regressed == {"LabeledFewShot/math", "MIPROv2/math", "KNNFewShot/math", "BootstrapFinetune/math"}


def test_shipped_thresholds_cover_every_metric():
    th = load_thresholds()
    assert th.rule("X", "y", "lm_calls") == Rule()  # exact
    assert th.rule("X", "y", "peak_rss_mb").pct == 10 and th.rule("X", "y", "wall_s").normalise


@pytest.mark.parametrize("text, words", [
    ("[metrics\nwall_s = 1", "not valid TOML"),
    ("[metrics]\nwal_s = { pct = 5 }", "unknown metric"),
    ("[metrics]\nwall_s = { pct = \"ten\" }", "must be a number"),
    ("[metrics]\nwall_s = { pct = -1 }", "must be a number >= 0"),
    ("[metrics]\nwall_s = { pcnt = 5 }", "did you mean 'pct'"),
    ("[metrics]\nwall_s = 5", "must be a table"),
    ("[metrics]\npeak_rss_mb = { normalise = true }", "times only"),
    ("[metric]\nwall_s = { pct = 5 }", "did you mean 'metrics'"),
    ('[strategies."GRPO"]\nwall_s = { pct = true }', "must be a number"),
])
def test_bad_thresholds_are_one_line_errors(tmp_path, text, words):
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    with pytest.raises(HarnessError, match=words.replace("(", r"\(")):
        load_thresholds(path)


def test_bad_thresholds_cli(tmp_path):
    path = tmp_path / "thresholds.toml"
    path.write_text("[metrics]\nwall_s = { pct = \"ten\" }\n")
    assert_user_error(harness("check", "--baseline", str(FIXTURE), "--current", str(FIXTURE),
                              "--thresholds", str(path)), "wall_s.pct must be a number")
    path.write_text("[metrics]\nwall_s = {")
    assert_user_error(harness("check", "--baseline", str(FIXTURE), "--current", str(FIXTURE),
                              "--thresholds", str(path)), "not valid TOML")
    assert_user_error(harness("check", "--baseline", str(FIXTURE), "--current", str(FIXTURE),
                              "--thresholds", str(tmp_path / "none.toml")), "does not exist")


def test_shipped_time_thresholds_catch_a_tripling_against_the_committed_baseline(tmp_path):
    """On the baseline machine's real noise (results/baseline: 3 repeats of the quick suite), any one
    repeat made 3x slower (wall and CPU: a CPU-bound slowdown, not contention) is caught in every
    strategy and task; unchanged, nothing is reported. (Measured on the same data: 2x is caught in
    26-29 of the 43 pairs, 2.5x in 42-43, 2.8x in all.)"""
    base = json.loads((ROOT / "results" / "baseline" / "report.json").read_text())
    pairs = {f"{r['strategy']}/{r['task']}" for r in base["runs"]}
    for repeat in (0, 1, 2):
        current = copy.deepcopy(base)
        current["runs"] = [r for r in current["runs"] if r["repeat"] == repeat]
        current.pop("aggregates", None)
        assert not check(tmp_path, base, current).findings
        for run in current["runs"]:
            run["wall_s"] *= 3
            run["cpu_s"] *= 3
        regressed = check(tmp_path, base, current).regressions
        for metric in ("wall_s", "cpu_s"):
            flagged = [f"{s}/{t}" for f in regressed if f.metric == metric for s, t in [f.key]]
            assert sorted(flagged) == sorted(pairs), (repeat, metric)


# --------------------------------------------------------------------------- machines, contention, re-runs

COMMITTED = ROOT / "results" / "baseline" / "report.json"


def committed(times: float = 1.0, machine_id: str | None = None) -> dict:
    """The committed baseline (3 repeats of the quick suite), its times scaled, perhaps from another machine."""
    data = json.loads(COMMITTED.read_text())
    for run in data["runs"]:
        run["wall_s"] *= times
        run["cpu_s"] *= times
    if machine_id is not None:
        data["machine"]["machine_id"] = machine_id
        for run in data["runs"]:
            run["machine"]["machine_id"] = machine_id
    return data


def pairs_in(lines_: list[str]) -> set[str]:
    """The strategy/task pairs the finding lines name."""
    return {re.search(r" (\w+/\w+) \w+: baseline ", line).group(1) for line in lines_}


def test_another_machines_baseline_3x_times_are_unconfirmed_and_pass(tmp_path):
    c = write(tmp_path, "current.json", committed(3.0, machine_id="elsewhere"))
    proc = harness("check", "--baseline", str(COMMITTED), "--current", str(c))
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr)
    out = proc.stdout.strip().splitlines()
    unconfirmed = [x for x in out if x.startswith("unconfirmed (baseline from machine d777a671e4f4, current elsewhere")]
    assert len(unconfirmed) == 2 * 43 and all("not counted): regressed: " in x for x in unconfirmed)
    assert not [x for x in out if x.startswith("regressed")]
    assert out[-1].startswith("check passed: 0 regressions, 0 improvements") and "86 unconfirmed" in out[-1]
    assert "times, RAM, GPU memory and disk count only once re-runs here confirm them" in proc.stderr


def test_another_machines_baseline_still_catches_30_percent_more_lm_calls(tmp_path):
    current = committed(3.0, machine_id="elsewhere")
    for run in current["runs"]:
        if run["strategy"] == "MIPROv2":
            for name in ("lm_calls", "input_tokens", "output_tokens"):
                run[name] = round(run[name] * 1.3)
    c = write(tmp_path, "current.json", current)
    proc = harness("check", "--baseline", str(COMMITTED), "--current", str(c))
    assert proc.returncode == 1, (proc.stdout[-2000:], proc.stderr)
    regressed = [x for x in proc.stdout.splitlines() if x.startswith("regressed: ")]
    assert pairs_in(regressed) == {"MIPROv2/math", "MIPROv2/classify", "MIPROv2/multihop"}
    assert {x.split()[2].rstrip(":") for x in regressed} == {"lm_calls", "input_tokens", "output_tokens"}
    assert proc.stdout.splitlines()[-1].startswith("check FAILED: 9 regressions")


def test_same_machine_3x_times_fail(tmp_path):
    c = write(tmp_path, "current.json", committed(3.0))
    proc = harness("check", "--baseline", str(COMMITTED), "--current", str(c))
    assert proc.returncode == 1, (proc.stdout[-2000:], proc.stderr)
    regressed = [x for x in proc.stdout.splitlines() if x.startswith("regressed: ")]
    assert len(regressed) == 2 * 43 and not [x for x in proc.stdout.splitlines() if x.startswith("unconfirmed")]


def contended_copro() -> dict:
    """COPRO/math waited for a CPU: wall 3x its CPU time, which did not change."""
    current = report()
    for run in runs_of(current, "COPRO", "math"):
        run["wall_s"] = 3 * run["cpu_s"]
    return current


def test_contended_run_is_flagged_not_counted(tmp_path):
    outcome = check(tmp_path, report(), contended_copro())
    (f,) = outcome.findings
    assert f.key == ("COPRO", "math") and f.metric == "wall_s" and f.verdict == UNCONFIRMED
    assert f.flag == "contended: wall 6.87 s, CPU 2.29 s" and not outcome.regressions
    assert f.line.startswith("unconfirmed (contended: wall 6.87 s, CPU 2.29 s; not counted): regressed: COPRO/math "
                             "wall_s: baseline 2.38 s, current 6.87 s")
    assert any(n.startswith("contended runs in the current report (wall far above CPU): COPRO/math")
               for n in outcome.notes)

    more_calls = contended_copro()
    for run in runs_of(more_calls, "COPRO", "math"):
        run["lm_calls"] += 1
    outcome = check(tmp_path, report(), more_calls)  # a contended run's calls still count
    assert [f.metric for f in outcome.regressions] == ["lm_calls"]

    # a CPU-bound slowdown on the same machine is not contention: it counts
    slower = report()
    for run in runs_of(slower, "COPRO", "math"):
        run["wall_s"] *= 3
        run["cpu_s"] *= 3
    assert sorted(f.metric for f in check(tmp_path, report(), slower).regressions) == ["cpu_s", "wall_s"]


def fake_reruns(current: dict, times: float, wall_over_cpu: float = 1.0, idle_cpu_s: float | None = None):
    """A re-run function that runs nothing: each re-run is the current record of the pair, its CPU time
    `times` x the baseline fixture's and its wall `wall_over_cpu` x that. Records the specs it got."""
    loaded = load_report(write(Path(current["_dir"]), "for_reruns.json", {k: v for k, v in current.items()
                                                                          if k != "_dir"}))
    base = {r.key: r for r in load_report(FIXTURE).runs}
    calls = []

    def rerun(spec, out):
        calls.append((spec, out))
        rec = next(r for r in loaded.runs if r.key == (spec.strategy, spec.task))
        cpu = base[rec.key].cpu_s * times
        return Rerun(rec.model_copy(update={"repeat": spec.repeat, "cpu_s": cpu, "wall_s": cpu * wall_over_cpu}),
                     idle_cpu_s)
    return rerun, calls


def confirmed_outcome(tmp_path, current: dict, **rerun_kw):
    current["_dir"] = str(tmp_path)
    rerun, calls = fake_reruns(current, **rerun_kw)
    del current["_dir"]
    b, c = load(write(tmp_path, "b.json", report()), "baseline"), load(write(tmp_path, "c.json", current), "current")
    th = load_thresholds()
    outcome = evaluate(b, c, th)
    confirm(outcome, b, c, th, tmp_path / "confirm", rerun=rerun, calibrate=lambda: b.report.calibration, n=2)
    return outcome, calls


def elsewhere_3x() -> dict:
    """The fixture from another machine with COPRO/math 3x slower (wall and CPU)."""
    current = report()
    current["machine"]["machine_id"] = "elsewhere"
    for run in runs_of(current, "COPRO", "math"):
        run["wall_s"] *= 3
        run["cpu_s"] *= 3
    return current


def test_confirm_counts_a_regression_only_if_the_reruns_regress_too(tmp_path):
    outcome, calls = confirmed_outcome(tmp_path, elsewhere_3x(), times=3.0)
    assert [(s.strategy, s.task, s.profile, s.repeat) for s, _ in calls] == [("COPRO", "math", "quick", 0),
                                                                             ("COPRO", "math", "quick", 1)]
    assert all(out == tmp_path / "confirm" for _, out in calls)
    assert sorted(f.metric for f in outcome.with_verdict(CONFIRMED)) == ["cpu_s", "wall_s"]
    assert sorted(f.metric for f in outcome.regressions) == ["cpu_s", "wall_s"]
    line = next(f.line for f in outcome.regressions if f.metric == "cpu_s")
    assert line.startswith("regressed (confirmed by 2 re-runs here: median 6.87 s, ratio 3.00): COPRO/math cpu_s")

    outcome, _ = confirmed_outcome(tmp_path, elsewhere_3x(), times=1.05)  # the re-runs are as fast as the baseline
    assert not outcome.regressions and len(outcome.with_verdict(CLEARED)) == 2
    assert outcome.with_verdict(CLEARED)[0].line.startswith("cleared by 2 re-runs here: median 2.40 s, ratio 1.01: "
                                                            "was regressed: COPRO/math")


def test_contended_reruns_do_not_judge_times_unless_the_machine_had_idle_cpu(tmp_path):
    outcome, _ = confirmed_outcome(tmp_path, elsewhere_3x(), times=3.0, wall_over_cpu=3.0, idle_cpu_s=0.0)
    assert not outcome.regressions and len(outcome.with_verdict(UNCONFIRMED)) == 2
    assert "re-runs contended: wall 20.61 s, CPU 6.87 s, 0 s of idle CPU too" in outcome.findings[0].line

    # wall 3x CPU while the cores sat idle for longer than the run was off the CPU: the run waited on
    # itself (a sleep, I/O), not for a CPU, so its re-runs judge it
    outcome, _ = confirmed_outcome(tmp_path, contended_copro(), times=1.0, wall_over_cpu=3.0, idle_cpu_s=100.0)
    (f,) = outcome.findings
    assert f.metric == "wall_s" and f.verdict == CONFIRMED and outcome.regressions == [f]


def test_confirm_reruns_nothing_when_nothing_is_flagged(tmp_path):
    current = report()
    for run in runs_of(current, "COPRO", "math"):
        run["lm_calls"] += 5
    outcome, calls = confirmed_outcome(tmp_path, current, times=1.0)
    assert not calls and [f.metric for f in outcome.regressions] == ["lm_calls"]


def test_confirm_with_a_real_rerun_of_a_cheap_pair(tmp_path):
    """End to end: LabeledFewShot/math from another machine, 30x slower, is re-run here for real (about
    2 s) into <current>/confirm/<time>/; a threshold of +1000% clears it unless this machine is 11x slower."""
    current = report()
    current["machine"]["machine_id"] = "elsewhere"
    for run in runs_of(current, "LabeledFewShot", "math"):
        run["wall_s"] *= 30
        run["cpu_s"] *= 30
    out = tmp_path / "cur"
    out.mkdir()
    write(out, "report.json", current)
    th = tmp_path / "th.toml"
    th.write_text("[metrics]\nwall_s = { pct = 1000 }\ncpu_s = { pct = 1000 }\n")
    proc = harness("check", "--baseline", str(FIXTURE), "--current", str(out), "--thresholds", str(th),
                   "--confirm", "--reruns", "1")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    (rec_path,) = (out / "confirm").glob("*/runs/LabeledFewShot__math__r0.json")
    rec = load_record(rec_path)
    assert rec.status == "ok" and rec.profile == "quick" and rec.lm_calls == runs_of(BASE, "LabeledFewShot", "math")[0][
        "lm_calls"]
    found = [x for x in proc.stdout.splitlines() if "LabeledFewShot/math" in x]
    assert len(found) == 2 and all(x.startswith("cleared by 1 re-run here") or "re-runs contended" in x for x in found)
    assert "re-ran 1 pair(s) 1x into" in proc.stderr


# --------------------------------------------------------------------------- bad numbers, exit codes, imports


def _big_lm_calls(data: dict) -> str:
    first = data["runs"][0]["lm_calls"]
    return json.dumps(data).replace(f'"lm_calls": {first}', '"lm_calls": ' + "9" * 5000, 1)


@pytest.mark.parametrize("name, text, words", [
    ("infinity", lambda d: json.dumps(d).replace('"wall_s": 2.0763', '"wall_s": Infinity'), "runs.0.wall_s"),
    ("nan", lambda d: json.dumps(d).replace('"cpu_s": 1.9706', '"cpu_s": NaN'), "runs.0.cpu_s"),
    ("zero-calibration", lambda d: json.dumps({**d, "calibration": {**d["calibration"], "seconds": 0}}),
     "calibration.seconds"),
    ("negative", lambda d: json.dumps(d).replace('"peak_rss_mb": 146.25', '"peak_rss_mb": -1'), "runs.0.peak_rss_mb"),
    ("5000-digit", _big_lm_calls, "runs.0.lm_calls"),
])
@pytest.mark.parametrize("side", ["baseline", "current"])
def test_bad_numbers_are_refused_with_exit_2_naming_the_field(tmp_path, name, text, words, side):
    path = tmp_path / f"{name}.json"
    path.write_text(text(report()))
    assert path.read_text() != json.dumps(report())
    other = ["--current", str(FIXTURE)] if side == "baseline" else ["--baseline", str(FIXTURE)]
    assert_user_error(harness("check", f"--{side}", str(path), *other), str(path), words)


def test_figures_that_pass_the_schema_but_not_arithmetic_are_refused(tmp_path):
    data = report()
    data["runs"][2]["lm_calls"] = 10**25  # 26 digits: a valid JSON integer, no measured figure
    with pytest.raises(HarnessError, match=r"runs\.2\.lm_calls \(COPRO__math__r0\) is an integer of about 26 digits"):
        refuse_bad_numbers(load(write(tmp_path, "big.json", data), "current"))


def test_zero_medians_and_ignored_metrics_never_make_nan(tmp_path):
    assert Rule(pct=float("inf")).allowed(Stat(0.0, 0.0, 0.0, 1)) == float("inf")
    assert Rule(pct=50, noise_k=float("inf")).allowed(Stat(0.0, 0.0, 0.0, 3)) == 0.0
    current = report()
    for run in runs_of(current, "COPRO", "math"):
        run["disk_written_mb"] = 5.0  # baseline 0 MiB
    assert not check(tmp_path, report(), current, "[metrics]\ndisk_written_mb = { pct = inf, abs = 0 }\n").findings
    (f,) = check(tmp_path, report(), current).regressions
    assert f.line.startswith("regressed: COPRO/math disk_written_mb: baseline 0 MiB, current 5 MiB, ratio n/a")


def test_unexpected_error_in_check_is_exit_2_not_1(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr("harness.check.evaluate", broken)
    assert cli.main(["check", "--baseline", str(FIXTURE), "--current", str(FIXTURE)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: check could not be made: unexpected ZeroDivisionError: float division by zero "
                   "(run with --debug for the traceback)")


def test_only_present_checks_the_pairs_the_current_report_has(tmp_path):
    current = report()
    current["runs"] = [r for r in current["runs"] if r["strategy"] != "KNNFewShot"]
    for run in runs_of(current, "MIPROv2", "math"):
        run["lm_calls"] += 1
    c = write(tmp_path, "current.json", current)
    proc = harness("check", "--baseline", str(FIXTURE), "--current", str(c), "--only-present")
    assert proc.returncode == 1, proc.stderr
    assert "--only-present: not checked, not in the current report: 1 pair(s) of the baseline (KNNFewShot/math)" \
        in proc.stderr
    assert proc.stdout.splitlines()[0].startswith("regressed: MIPROv2/math lm_calls")


def test_check_imports_neither_compare_nor_through_it():
    proc = subprocess.run([sys.executable, "-c", "import sys, harness.cli, harness.check; "
                           "print('harness.compare' in sys.modules)"], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.strip() == "False", proc.stderr
    import harness.compare
    assert not hasattr(harness.compare, "main_check")


def test_wall_times_of_a_parallel_bench_are_not_gated_against_a_serial_one(tmp_path):
    """A --jobs 2 bench's wall and CPU times (runs sharing the CPUs) are not a run alone's: not checked against
    --jobs 1, with a note; RAM still is. Between two serial reports the same walls regress."""
    current = report()
    for run in current["runs"]:
        run["wall_s"] *= 3
        run["cpu_s"] *= 3
        run["peak_rss_mb"] *= 3
        run["jobs"], run["ran_beside"] = 2, 1
    outcome = check(tmp_path, report(), current)
    assert not [f for f in outcome.findings if f.metric in ("wall_s", "cpu_s")]
    assert {f.metric for f in outcome.findings} == {"peak_rss_mb"}  # (RAM is per run whatever ran beside it)
    assert any("wall and CPU times not checked: the baseline ran 1 run(s) at once, the current report 2" in n
               for n in outcome.notes), outcome.notes
    serial = report()
    for run in serial["runs"]:
        run["wall_s"] *= 3
    assert [f for f in check(tmp_path, report(), serial).findings if f.metric == "wall_s"]
