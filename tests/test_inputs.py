"""Bad numbers and bad input are refused at the door; OUT has one writer; RESUME never hides a failure.

Each case is what a user typed or a file held on a fresh clone, and what the harness must do: one line
`error: ...`, exit 2, and nothing already written lost.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.load import SchemaError, load_record, load_report, read_json
from tests.helpers import PLUGIN, ROOT, harness

REFERENCE = ROOT / "results" / "baseline" / "report.json"
SLEEPY = ["--profile", "quick", "--strategy", "_sleepy", "--task", "_toy"]


def one_line_exit_2(r: subprocess.CompletedProcess, *needles: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# --------------------------------------------------------------------------- limits and counts


@pytest.mark.parametrize("args,needle", [
    (["run", "--strategy", "_sleepy", "--task", "_toy", "--timeout", "-5"], "--timeout"),
    (["run", "--strategy", "_sleepy", "--task", "_toy", "--timeout", "0"], "--timeout"),
    (["run", "--strategy", "_sleepy", "--task", "_toy", "--timeout", "nan"], "--timeout"),
    (["run", "--strategy", "_sleepy", "--task", "_toy", "--timeout", "inf"], "--timeout"),
    (["run", "--strategy", "_sleepy", "--task", "_toy", "--max-rss", "-1"], "--max-rss"),
    (["bench", *SLEEPY, "--repeat", "0"], "--repeat"),
    (["bench", *SLEEPY, "--repeat", "abc"], "--repeat"),
])
def test_limits_and_counts_are_checked_before_a_run(tmp_path, args, needle):
    r = harness(*args, "--out", str(tmp_path / "out"), timeout=60)
    one_line_exit_2(r, needle)
    assert not (tmp_path / "out" / "runs").exists()  # nothing ran


def test_generic_variables_in_the_shell_change_nothing(tmp_path):
    """OUT, PROFILE, TASK, REPEAT, LM ... in a user's shell are not read by the CLI (make passes flags)."""
    env = {"REPEAT": "abc", "OUT": str(tmp_path / "elsewhere"), "PROFILE": "bogus", "TASK": "nope", "LM": "x/y",
           "STRATEGY": "nope", "RESUME": "1", "PRICE_AS": "nope/nope"}
    r = harness("bench", *SLEEPY, "--out", str(tmp_path / "out"), env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "out" / "runs" / "_sleepy___toy__r0.json").exists() and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("flag", ["--strategy", "--task"])
def test_a_name_list_that_names_nothing_is_not_all(tmp_path, flag):
    args = ["bench", "--profile", "quick", "--strategy", "_sleepy", "--task", "_toy", "--out", str(tmp_path)]
    args[args.index(flag) + 1] = ","
    one_line_exit_2(harness(*args), "names no")


def test_report_of_an_empty_folder_names_the_folder(tmp_path):
    line = one_line_exit_2(harness("report", str(tmp_path)))
    assert str(tmp_path) in line and "{out}" not in line


# --------------------------------------------------------------------------- plugins


def test_a_plugin_that_raises_on_import_is_named(tmp_path):
    (tmp_path / "badplugin.py").write_text("raise RuntimeError('plugin bug')\n")
    r = harness("list", env={"HARNESS_PLUGINS": "badplugin", "PYTHONPATH": str(tmp_path)})
    one_line_exit_2(r, "'badplugin'", "RuntimeError: plugin bug")


def test_a_plugin_cannot_silently_replace_a_built_in_strategy(tmp_path):
    (tmp_path / "shadow.py").write_text(
        "from harness.registry import add_strategy\nfrom harness.strategies.base import Strategy\n"
        "add_strategy(Strategy('COPRO', 'prompt', 'a fake COPRO', lambda ctx, p: p))\n")
    r = harness("list", env={"HARNESS_PLUGINS": "shadow", "PYTHONPATH": str(tmp_path)})
    one_line_exit_2(r, "'COPRO'", "built in")


# --------------------------------------------------------------------------- numbers in files


def _reference() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.mark.parametrize("where,value", [("wall_s", float("nan")), ("wall_s", float("inf")), ("cpu_s", -1.0),
                                         ("lm_calls", -3), ("score_after", 250.0)])
def test_a_bad_measured_value_is_refused_naming_the_field(tmp_path, where, value):
    data = _reference()
    data["runs"][2][where] = value
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))  # json writes NaN and Infinity as bare words
    with pytest.raises(SchemaError) as exc:
        load_report(path)
    message = str(exc.value)
    assert str(path) in message and "\n" not in message
    assert where in message or "finite" in message, message


def test_a_5000_digit_integer_is_refused_not_computed_with(tmp_path):
    text = REFERENCE.read_text().replace('"lm_calls": ', '"lm_calls": ' + "9" * 5000 + " + 0 * ", 0)
    path = tmp_path / "report.json"
    data = _reference()
    data["runs"][0]["lm_calls"] = 0
    raw = json.dumps(data).replace('"lm_calls": 0', '"lm_calls": ' + "9" * 5000, 1)
    path.write_text(raw)
    with pytest.raises(SchemaError, match="digits"):
        load_report(path)
    assert text  # the reference itself is untouched


def test_a_record_with_nan_cannot_be_made(tmp_path):
    rec = load_report(REFERENCE).runs[0]
    with pytest.raises(ValueError):
        type(rec).model_validate({**rec.model_dump(), "peak_rss_mb": math.nan})
    path = tmp_path / "r.json"
    path.write_text(rec.model_dump_json().replace('"cpu_s":', '"cpu_s": NaN, "x":', 1))
    with pytest.raises(SchemaError):
        load_record(path)


def test_read_json_names_the_file(tmp_path):
    bad = tmp_path / "scaling.json"
    bad.write_text("{not json")
    with pytest.raises(SchemaError, match="scaling.json is not valid JSON"):
        read_json(bad, "scaling file")


def test_commands_refuse_a_report_with_nan_in_one_line(tmp_path):
    data = _reference()
    data["runs"][0]["wall_s"] = float("nan")
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    for args in (["claims", str(path)], ["compare", str(REFERENCE), str(path)], ["report", str(tmp_path)]):
        one_line_exit_2(harness(*args, timeout=120), str(path))


# --------------------------------------------------------------------------- one writer, honest resume


def test_harness_run_locks_its_out_folder(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "HARNESS_PLUGINS": PLUGIN}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "bench", *SLEEPY, "--repeat", "3", "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.time()
        while not (out / "bench.json").exists() and time.time() - t0 < 60:
            time.sleep(0.1)
        r = harness("run", "--strategy", "_sleepy", "--task", "_toy", "--out", str(out))
        one_line_exit_2(r, "in use")
    finally:
        proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert len(json.loads((out / "report.json").read_text())["runs"]) == 3


def test_sigterm_of_harness_run_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "HARNESS_PLUGINS": PLUGIN}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--strategy", "_hang", "--task", "_toy",
                             "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    t0 = time.time()
    while not any((out / ".work").glob("*")) if (out / ".work").is_dir() else time.time() - t0 < 60:
        time.sleep(0.1)
        if time.time() - t0 > 60:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert not list((out / ".work").glob("*")), list((out / ".work").iterdir())


def test_resume_runs_again_what_did_not_end_ok_and_keeps_the_old_record(tmp_path):
    out = tmp_path / "out"
    r = harness("bench", "--profile", "quick", "--strategy", "_raise,_sleepy", "--task", "_toy", "--out", str(out))
    assert r.returncode == 1
    failed = out / "runs" / "_raise___toy__r0.json"
    ok = out / "runs" / "_sleepy___toy__r0.json"
    failed_bytes, ok_bytes = failed.read_bytes(), ok.read_bytes()

    r = harness("bench", "--profile", "quick", "--strategy", "_raise,_sleepy", "--task", "_toy", "--out", str(out),
                "--resume")
    assert r.returncode == 1, r.stderr[-2000:]  # a failing bench stays failing
    assert "recorded as failed" in r.stderr and "running it again" in r.stderr
    assert ok.read_bytes() == ok_bytes  # the ok record is kept as it was
    aside = list((out / "archive").glob("resume-*/runs/_raise___toy__r0.json"))
    assert len(aside) == 1 and aside[0].read_bytes() == failed_bytes  # the old one is set aside, not lost
    assert json.loads(failed.read_text())["started_at"] != json.loads(failed_bytes)["started_at"]

    r = harness("bench", "--profile", "quick", "--strategy", "_raise,_sleepy", "--task", "_toy", "--out", str(out),
                "--resume", "--keep-failed")
    assert r.returncode == 1 and "--keep-failed" in r.stdout + r.stderr  # kept, and still a failure


def test_resume_runs_again_a_record_that_cannot_be_read(tmp_path):
    out = tmp_path / "out"
    assert harness("bench", *SLEEPY, "--out", str(out)).returncode == 0
    record = out / "runs" / "_sleepy___toy__r0.json"
    record.write_text("{ truncated")
    r = harness("bench", *SLEEPY, "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "cannot be used" in r.stderr
    assert load_record(record).status == "ok"
    assert Path(next((out / "archive").glob("resume-*/runs/_sleepy___toy__r0.json"))).read_text() == "{ truncated"


# --------------------------------------------------------------------------- NaN from a run


def test_a_run_that_reports_nan_still_gets_a_record_that_says_so(tmp_path):
    r = harness("run", "--strategy", "_sleepy", "--task", "_toy_nan", "--out", str(tmp_path))
    assert r.returncode == 1, r.stderr[-2000:]
    rec = load_record(tmp_path / "runs" / "_sleepy___toy_nan__r0.json")
    assert rec.status == "failed" and "score_before" in rec.error and "finite" in rec.error
    assert rec.wall_s > 0  # what was measured is kept


def test_nan_in_a_strategy_s_own_figures_becomes_null_not_an_unreadable_record(tmp_path):
    r = harness("run", "--strategy", "_nan_extra", "--task", "_toy", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    rec = load_record(tmp_path / "runs" / "_nan_extra___toy__r0.json")
    assert rec.extra["best_score"] is None and rec.extra["curve"] == [1.0, None]


def test_settings_set_on_the_command_line_make_a_variant_of_their_own(tmp_path):
    """--set STRATEGY.key=value reaches the optimizer (constructor or compile), the record keeps it, the run id and
    the key that compare and check match by carry it; a setting the optimizer takes nowhere is named."""
    from harness.load import load_record

    out = tmp_path / "out"
    r = harness("run", "--strategy", "COPRO", "--task", "classify", "--profile", "quick", "--set", "COPRO.breadth=3",
                "--set", "COPRO.depth=1", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    rec = load_record(out / "runs" / "COPRO@breadth=3,depth=1__classify__r0.json")
    assert rec.settings == {"breadth": 3, "depth": 1} and rec.key == ("COPRO@breadth=3,depth=1", "classify")
    # COPRO's own count: breadth x depth candidates, each scored on the 32 train examples (+ proposals)
    default = harness("run", "--strategy", "COPRO", "--task", "classify", "--profile", "quick", "--out", str(out))
    base = load_record(out / "runs" / "COPRO__classify__r0.json")
    assert default.returncode == 0 and base.key == ("COPRO", "classify") and not base.settings
    assert rec.phase("compile").usage.lm_calls < base.phase("compile").usage.lm_calls
    bad = harness("run", "--strategy", "COPRO", "--task", "classify", "--profile", "quick", "--set", "COPRO.nope=1",
                  "--out", str(tmp_path / "bad"))
    assert bad.returncode == 1 and "COPRO takes no 'nope'; its settings: breadth, depth" in bad.stdout
    one_line_exit_2(harness("run", "--strategy", "COPRO", "--task", "classify", "--set", "Nope.x=1"), "Nope")
    one_line_exit_2(harness("run", "--strategy", "COPRO", "--task", "classify", "--set", "COPRO.breadth"), "--set")


def test_dependencies_are_ranges_with_exact_pins_beside_them():
    """pyproject.toml: ranges a user's project can install beside its own (torch exactly 2.13.0), test and bench
    tools in extras; constraints.txt: the exact version of every one, which make installs with."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M))
    runtime = {re.match(r"[A-Za-z0-9_.-]+", d).group(0): d for d in project["dependencies"]}
    assert runtime["torch"] == "torch==2.13.0"
    assert all("==" not in d for n, d in runtime.items() if n != "torch"), runtime
    assert not {"pytest", "pytest-benchmark", "memory-profiler"} & set(runtime)
    extras = {re.match(r"[A-Za-z0-9_.-]+", d).group(0) for e in project["optional-dependencies"].values() for d in e}
    assert {"pytest", "pytest-benchmark", "memory-profiler"} <= extras
    assert set(runtime) | extras <= set(pins), set(runtime) | extras - set(pins)
    out = harness("--version")
    assert out.returncode == 0 and re.match(r"dspy-resource-bench \S+ \(dspy 3\.4\.1\)", out.stdout)


def test_a_trainset_smaller_than_simbas_batch_says_what_to_do(tmp_path):
    """SIMBA asserts len(trainset) >= bsize inside compile ("Trainset too small: 27 < 32"): the run fails with a
    line that names the numbers and the two ways out, and the setting it names then runs."""
    sizes = ("--n-train", "5", "--n-dev", "5", "--n-test", "5")
    small = harness("run", "--strategy", "SIMBA", "--task", "classify", "--profile", "standard", *sizes,
                    "--out", str(tmp_path))
    assert small.returncode != 0
    rec = load_record(tmp_path / "runs" / "SIMBA__classify__r0.json")
    assert rec.status == "failed" and rec.error == ("HarnessError: SIMBA needs at least bsize=32 train examples and "
                                                   "this run has 5: give more rows, or --set SIMBA.bsize=5")
    fixed = harness("run", "--strategy", "SIMBA", "--task", "classify", "--profile", "standard", *sizes,
                    "--set", "SIMBA.bsize=5", "--out", str(tmp_path))
    assert fixed.returncode == 0, fixed.stderr
    assert load_record(tmp_path / "runs" / "SIMBA@bsize=5__classify__r0.json").status == "ok"
