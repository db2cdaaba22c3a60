"""`compare`, `check`, thresholds and the report schema migration; fast, no bench runs.

Reports are edited copies of tests/fixtures/quick_report.json (a trimmed real quick report: 7 runs,
no timelines). User errors are checked through `python -m harness` in a subprocess: one line on
stderr, exit 2, no traceback.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.aggregate import build_aggregates
from harness.check import Rule, evaluate, load_thresholds
from harness.compare import build_rows, context_notes, load
from harness.errors import HarnessError
from harness.record import SCHEMA_VERSION, SchemaError, load_record, load_report

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


def with_repeats(data: dict, strategy: str, task: str, field: str, values: list[float]) -> dict:
    """Replace the one run of strategy/task by len(values) repeats whose `field` takes `values`."""
    (run,) = runs_of(data, strategy, task)
    i = data["runs"].index(run)
    reps = []
    for n, v in enumerate(values):
        rep = copy.deepcopy(run)
        rep.update(repeat=n, run_id=f"{strategy}__{task}__r{n}", **{field: v})
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


def test_fixture_is_current_schema_with_aggregates():
    rep = load_report(FIXTURE)
    assert rep.schema_version == SCHEMA_VERSION == 2
    assert rep.aggregates == build_aggregates(rep.runs)
    agg = {(a.strategy, a.task): a for a in rep.aggregates}
    assert agg[("COPRO", "math")].metrics["lm_calls"].median == 311
    assert agg[("SignatureOptimizer", "math")].statuses == {"failed": 1}
    assert agg[("SignatureOptimizer", "math")].metrics == {}


def test_v1_report_migrates_to_v2(tmp_path):
    data = report(schema_version=1)
    del data["aggregates"]
    for run in data["runs"]:
        run["schema_version"] = 1
    with_repeats(data, "COPRO", "math", "wall_s", [3.0, 1.0, 2.0])
    rep = load_report(write(tmp_path, "v1.json", data))
    assert rep.schema_version == 2 and all(r.schema_version == 2 for r in rep.runs)
    agg = {(a.strategy, a.task): a for a in rep.aggregates}
    wall = agg[("COPRO", "math")].metrics["wall_s"]
    assert (wall.median, wall.min, wall.max, wall.n) == (2.0, 1.0, 3.0, 3)
    assert rep.aggregates == build_aggregates(rep.runs)


def test_v1_run_record_migrates(tmp_path):
    run = copy.deepcopy(BASE["runs"][0])
    run["schema_version"] = 1
    rec = load_record(write(tmp_path, "run.json", run))
    assert rec.schema_version == 2 and rec.lm_calls == run["lm_calls"]


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
    baseline = with_repeats(report(), "COPRO", "math", "wall_s", [9.0, 11.0, 14.0])
    inside = with_repeats(report(), "COPRO", "math", "wall_s", [20.5])  # +86%: past the floor, inside the noise
    outcome = check(tmp_path, baseline, inside)
    assert not outcome.findings

    outside = with_repeats(report(), "COPRO", "math", "wall_s", [21.5])
    outcome = check(tmp_path, baseline, outside)
    (line,) = lines(outcome, "regressed:")
    assert line.startswith("regressed: COPRO/math wall_s: baseline 11 s, current 21.50 s, ratio 1.95")
    assert "allowed 10 s = max(50% 5.50 s, abs 1.50 s, 2 x spread 5 s)" in line

    quiet = with_repeats(report(), "COPRO", "math", "wall_s", [11.0, 11.0, 11.0])  # no noise: the floor rules
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
    """On this machine's real noise (results/baseline: 3 repeats of the quick suite), any one repeat
    made 3x slower is caught in every strategy and task; unchanged, nothing is reported. (Measured on
    the same data: 2x is caught in 18 of the 43 pairs; the loosest pair needs 2.8x.)"""
    base = json.loads((ROOT / "results" / "baseline" / "report.json").read_text())
    pairs = {f"{r['strategy']}/{r['task']}" for r in base["runs"]}
    for repeat in (0, 1, 2):
        current = copy.deepcopy(base)
        current["runs"] = [r for r in current["runs"] if r["repeat"] == repeat]
        current.pop("aggregates", None)
        assert not check(tmp_path, base, current).findings
        for run in current["runs"]:
            run["wall_s"] *= 3
        flagged = [f.line.split(" ")[1] for f in check(tmp_path, base, current).regressions]
        assert sorted(flagged) == sorted(pairs), repeat
