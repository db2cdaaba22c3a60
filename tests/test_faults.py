"""A bench that loses nothing: kills, interrupts, resumes, shared OUT folders and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.record import LMFailures
from harness.redact import redact_url, scrub, secret_values, url_secrets
from harness.runner import RunSpec, run_one
from tests.helpers import PLUGIN, ROOT, harness, use_plugin

SLEEPY = ["bench", "--profile", "quick", "--strategy", "_sleepy", "--task", "_toy"]


def start_bench(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HARNESS_PLUGINS": PLUGIN}
    return subprocess.Popen([sys.executable, "-m", "harness", *SLEEPY, "--out", str(out), *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_records(out: Path, n: int, timeout: float = 120) -> list[Path]:
    t0 = time.time()
    while time.time() - t0 < timeout:
        found = sorted((out / "runs").glob("*.json")) if (out / "runs").is_dir() else []
        if len(found) >= n:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{n} records did not appear in {out} within {timeout}s")


def test_killed_bench_resumes_keeping_every_record_byte_for_byte(tmp_path):
    out = tmp_path / "out"
    proc = start_bench(out, "--repeat", "4")
    first = wait_for_records(out, 2)
    before = {p.name: p.read_bytes() for p in first}
    os.kill(proc.pid, signal.SIGKILL)  # the harness itself, mid-run
    proc.wait()
    time.sleep(2.5)  # an orphaned run notices its runner is gone within a second and stops
    assert not (out / "report.json").exists() or not json.loads((out / "report.json").read_text())["complete"]

    r = harness(*SLEEPY, "--repeat", "4", "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "already recorded" in r.stderr
    for name, data in before.items():
        assert (out / "runs" / name).read_bytes() == data  # untouched
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and len(report["runs"]) == 4 and report["missing_runs"] == []
    assert not list((out / ".work").iterdir()) if (out / ".work").exists() else True


def test_interrupted_bench_writes_an_incomplete_report_naming_the_missing_runs(tmp_path):
    out = tmp_path / "out"
    proc = start_bench(out, "--repeat", "3")
    wait_for_records(out, 1)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    report = json.loads((out / "report.json").read_text())
    assert not report["complete"] and report["missing_runs"]
    assert report["notes"][0].startswith("INCOMPLETE")
    assert "INCOMPLETE" in (out / "report.md").read_text()
    assert "Traceback" not in err


def test_two_benches_cannot_share_an_out_folder_but_can_run_side_by_side(tmp_path):
    shared, other = tmp_path / "shared", tmp_path / "other"
    proc = start_bench(shared, "--repeat", "3")
    t0 = time.time()
    while not (shared / "bench.json").exists() and time.time() - t0 < 60:  # the first bench holds OUT
        time.sleep(0.1)
    second = harness(*SLEEPY, "--out", str(shared))
    assert second.returncode == 2
    assert second.stderr.strip().count("\n") == 0 and "in use by another bench" in second.stderr
    beside = harness(*SLEEPY, "--out", str(other))
    assert beside.returncode == 0, beside.stderr[-2000:]
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert len(json.loads((shared / "report.json").read_text())["runs"]) == 3
    assert len(json.loads((other / "report.json").read_text())["runs"]) == 1


def test_a_failing_hanging_or_greedy_strategy_does_not_stop_the_others(tmp_path):
    out = tmp_path / "out"
    r = harness("bench", "--profile", "quick", "--strategy", "_raise,_hang,_alloc,_needs_missing,_sleepy",
                "--task", "_toy", "--timeout", "8", "--max-rss", "500", "--out", str(out))
    assert r.returncode == 1  # the failures are reported as failed tests
    report = json.loads((out / "report.json").read_text())
    status = {run["strategy"]: run["status"] for run in report["runs"]}
    assert status == {"_raise": "failed", "_hang": "timeout", "_alloc": "oom", "_needs_missing": "failed",
                      "_sleepy": "ok"}
    assert report["complete"]
    errors = {run["strategy"]: run["error"] for run in report["runs"]}
    assert "not installed" in errors["_needs_missing"] and "\n" not in "".join(filter(None, errors.values()))


def test_an_optimizer_whose_every_evaluation_failed_before_the_metric_is_failed_not_ok(tmp_path):
    out = tmp_path / "out"
    r = harness("bench", "--profile", "quick", "--strategy", "_blind_eval,_eval_once", "--task", "_toy", "--out",
                str(out))
    assert r.returncode == 1
    runs = {run["strategy"]: run for run in json.loads((out / "report.json").read_text())["runs"]}
    blind, once = runs["_blind_eval"], runs["_eval_once"]
    assert blind["status"] == "failed" and "none of the 2 items of the optimizer's 1 evaluation inside DSPy reached " \
        "the metric" in blind["error"], blind["error"]
    assert blind["extra"]["inner_evaluations"] == {"evaluations": 1, "items": 2, "scored": 0}
    assert once["status"] == "ok" and once["extra"]["inner_evaluations"] == {"evaluations": 1, "items": 2, "scored": 2}


def test_bad_input_gets_one_line_and_exit_2(tmp_path):
    cases = [
        ("run", "--strategy", "Nope", "--task", "math"),
        ("run", "--strategy", "COPRO", "--task", "nope"),
        ("run", "--strategy", "COPRO", "--task", "math", "--profile", "huge"),
        ("run", "--strategy", "COPRO", "--task", "math", "--lm", "nosuchprovider/model"),
        ("run", "--strategy", "COPRO", "--task", "math", "--price-as", "openai/not-a-model"),
        ("run", "--strategy", "AvatarOptimizer", "--task", "math"),
        ("run", "--strategy", "COPRO", "--task", "math", "--out", "/proc/forbidden"),
        ("bench", "--profile", "quick", "--strategy", "COPRO", "--task", "math", "--out", "/proc/forbidden"),
        ("bench", "--profile", "quick", "--strategy", "COPRO,Nope"),
        ("report", str(tmp_path / "missing")),
    ]
    for args in cases:
        r = harness(*args, timeout=60)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_list_and_help_explain(tmp_path):
    r = harness("list")
    assert r.returncode == 0
    for name in ("MIPROv2", "GRPO", "BetterTogether", "multihop", "quick", "standard"):
        assert name in r.stdout
    assert "_sleepy" not in r.stdout  # test entries stay hidden
    h = harness("--help")
    assert h.returncode == 0 and "Offline by default" in h.stdout


def test_urls_lose_their_credentials_wherever_they_appear():
    url = "http://user:s3cretpass@127.0.0.1:8000/v1?model=x&api_key=abcdef123456&Signature=zz#access_token=tok"
    assert redact_url(url) == ("http://[REDACTED]@127.0.0.1:8000/v1?model=x&api_key=[REDACTED]&Signature=[REDACTED]"
                               "#access_token=[REDACTED]")
    assert redact_url("https://ghp_0123456789abcdef@github.com/o/r.git") == "https://[REDACTED]@github.com/o/r.git"
    plain = "http://127.0.0.1:8000/v1?model=x&page=2"
    assert redact_url(plain) == plain and scrub(f"see {plain}.", []) == f"see {plain}."
    text = f"ConnectError('{url}'), password s3cretpass, key abcdef123456."
    once = scrub(text, url_secrets(url))
    assert "s3cretpass" not in once and "abcdef123456" not in once and once.endswith(", key [REDACTED].")
    assert scrub(once, url_secrets(url)) == once  # a report scrubs records already scrubbed: nothing changes
    assert {"s3cretpass", "abcdef123456"} <= set(secret_values({"API_BASE": url, "HOME": "/root"}))
    # named like a credential: kept from an offline run's child and scrubbed; a tokenizer folder is neither
    from harness.redact import SECRET_NAME
    assert all(SECRET_NAME.search(n) for n in ("OPENAI_API_KEY", "HF_TOKEN", "GITHUB_TOKEN", "MY_AUTH", "DB_PASSWORD"))
    assert not SECRET_NAME.search("TIKTOKEN_CACHE_DIR") and not SECRET_NAME.search("HOME")


def test_an_offline_run_counts_no_failed_call_and_every_token(tmp_path):
    use_plugin()
    rec = run_one(RunSpec("LabeledFewShot", "_toy", "quick"), tmp_path)
    assert rec.status == "ok", rec.error
    assert rec.lm_failures == LMFailures(errored_examples={"eval_before": 0, "eval_after": 0})
    assert rec.lm_failure_summary is None and rec.lm_calls_without_usage == 0
    assert rec.lm_calls == 4 and rec.input_tokens > 0 and rec.api_cost_usd > 0
