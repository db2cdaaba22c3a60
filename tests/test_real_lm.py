"""A real LM through DSPy's own client: a local OpenAI-compatible server started by the test on 127.0.0.1."""

from __future__ import annotations

import json

from harness.bench import summary_line
from harness.lm.usage import UsageCounter, since
from harness.record import LMUsage
from harness.runner import RunSpec, run_one
from harness.tasks.registry import TASKS
from tests.helpers import harness, use_plugin
from tests.openai_server import ChatServer, closed_port

MATH = next(t for t in TASKS if t.name == "math")


def test_recorded_tokens_equal_what_the_server_reported(tmp_path):
    with ChatServer(MATH.oracle()) as srv:
        rec = run_one(RunSpec("BootstrapFewShot", "math", "quick", lm="openai/local-model", api_base=srv.base_url),
                      tmp_path)
        totals = dict(srv.totals)
    assert rec.status == "ok", rec.error
    assert rec.lm_kind == "real" and rec.lm == "openai/local-model"
    # evaluation ran in 8 threads: every call is still counted, with the server's own usage figures
    assert rec.lm_calls == totals["requests"] > 0
    assert rec.input_tokens == totals["prompt_tokens"]
    assert rec.output_tokens == totals["completion_tokens"]
    assert rec.priced_as is None and rec.api_cost_usd is None  # a local model has no price: left unpriced
    assert rec.score_after is not None and rec.lm_engine_s is None


def test_a_planted_key_never_reaches_records_logs_or_reports(tmp_path):
    key = "sk-test-PLANTED-4f1b2c3d4e5f60718293a4b5c6d7e8f9"
    with ChatServer(MATH.oracle()) as srv:
        out = tmp_path / "bench"
        env = {"OPENAI_API_KEY": key, "MY_SERVICE_TOKEN": key + "-2"}
        r1 = harness("bench", "--profile", "quick", "--strategy", "LabeledFewShot", "--task", "math",
                     "--lm", "openai/local-model", "--api-base", srv.base_url, "--out", str(out), env=env)
        r2 = harness("run", "--strategy", "_echo_env", "--task", "_toy", "--out", str(out / "single"),
                     "--lm", "openai/local-model", "--api-base", srv.base_url, env=env)
    assert r1.returncode == 0, r1.stderr[-2000:]
    assert r2.returncode == 1  # the strategy fails on purpose, quoting the key in its error
    written = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "report.json" for p in written) and any(p.name == "benchmark.json" for p in written)
    assert any(p.suffix == ".log" for p in written)
    for path in written:
        data = path.read_bytes()
        assert key.encode() not in data, f"key leaked into {path}"
    for stream in (r1.stdout, r1.stderr, r2.stdout, r2.stderr):
        assert key not in stream
    record = json.loads(next((out / "single" / "runs").glob("_echo_env*.json")).read_text())
    assert "[REDACTED]" in record["error"]


# ---------------------------------------------------------------------------------------------- LM failures

CLASSIFY = next(t for t in TASKS if t.name == "classify")


def test_a_closed_port_is_a_failed_run_that_names_the_connection_failure(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    r = harness("run", "--strategy", "LabeledFewShot", "--task", "_toy", "--lm", "openai/x", "--api-base", url,
                "--lm-retries", "1", "--out", str(tmp_path))
    assert r.returncode == 1, r.stderr[-2000:]
    rec = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    assert rec["status"] == "failed"
    assert rec["error"].startswith(f"every LM call failed (4 of 4: connection failed to {url}: "), rec["error"]
    assert "Connection refused" in rec["error"] and "\n" not in rec["error"]
    assert rec["lm_calls"] == 0
    f = rec["lm_failures"]  # 2 test examples, scored before and after: 4 calls, each retried once
    assert f["failed_calls"] == 4 and f["by_kind"] == {"connection": 4} and f["retries"] == 4
    assert f["errored_examples"] == {"eval_before": 2, "eval_after": 2}
    assert "FAILED: every LM call failed (4 of 4: connection failed" in r.stdout


def test_http_500s_are_counted_by_kind_with_retries_and_errored_examples(tmp_path):
    with ChatServer(CLASSIFY.oracle(), fail_pct=30) as srv:
        rec = run_one(RunSpec("LabeledFewShot", "classify", "quick", lm="openai/local-model", api_base=srv.base_url,
                              options={"lm_retries": 1}), tmp_path)
        totals = dict(srv.totals)
    assert rec.status == "ok", rec.error
    f = rec.lm_failures
    n = f.failed_calls
    assert 0 < n < rec.n_test  # some of the 2 x 24 evaluation calls, by the prompt's hash
    assert f.by_kind == {"http_status": n} and f.http_statuses == {"500": n}
    assert totals["http_500"] == n + f.retries and f.retries == n  # every attempt the server refused is counted
    assert rec.lm_calls == totals["requests"]  # served calls only
    # ChainOfThought makes one call per example and LabeledFewShot none to compile: one errored example each
    assert sum(f.errored_examples.values()) == n and set(f.errored_examples) == {"eval_before", "eval_after"}
    for name in ("eval_before", "eval_after"):
        assert rec.phase(name).lm_failures.errored_examples == {name: f.errored_examples[name]}
    assert sum(rec.phase(p).lm_failures.failed_calls for p in ("eval_before", "compile", "eval_after")) == n
    assert "HTTP 500 to " + srv.base_url in f.first_error
    expected = f"{n} of {rec.lm_calls + n} LM calls failed (http 500 x{n}; {n} retries), {n} examples errored"
    assert rec.lm_failure_summary == expected
    assert summary_line(rec).startswith("ok in ") and summary_line(rec).endswith(", " + expected)


def test_a_server_without_usage_gives_tokens_and_spend_not_measured(tmp_path):
    use_plugin()
    with ChatServer(CLASSIFY.oracle(), usage=False) as srv:
        rec = run_one(RunSpec("LabeledFewShot", "_toy", "quick", lm="openai/local-model", api_base=srv.base_url,
                              price_as="openai/gpt-4o-mini"), tmp_path)
        served = srv.totals["requests"]
    assert rec.status == "ok", rec.error
    assert rec.lm_calls == served == rec.lm_calls_without_usage == 4
    assert rec.input_tokens is None and rec.output_tokens is None and rec.api_cost_usd is None
    for name in ("eval_before", "eval_after"):
        usage = rec.phase(name).usage
        assert usage.input_tokens is None and usage.output_tokens is None and usage.api_cost_usd is None
    assert "tokens not measured" in summary_line(rec)


def test_a_partial_sum_of_tokens_is_not_a_figure():
    counter = UsageCounter()
    counter.add(calls=1, input_tokens=50, output_tokens=5)
    before = counter.totals()
    counter.add(calls=1, without_usage=1)
    assert counter.usage().input_tokens is None and counter.usage().calls_without_usage == 1
    assert since(before, counter).output_tokens is None
    assert LMUsage(input_tokens=3, output_tokens=1) + LMUsage(calls_without_usage=1) == \
        LMUsage(input_tokens=None, output_tokens=None, calls_without_usage=1)


def test_credentials_in_the_api_base_are_never_written_or_printed(tmp_path):
    password, key = "s3cretpass", "abcdef123456"
    with ChatServer(CLASSIFY.oracle()) as srv:
        url = f"http://user:{password}@127.0.0.1:{srv.port}/v1?api_key={key}"
        out = tmp_path / "bench"
        r = harness("bench", "--profile", "quick", "--strategy", "LabeledFewShot", "--task", "_toy",
                    "--lm", "openai/local-model", "--api-base", url, "--lm-retries", "0", "--out", str(out))
    # DSPy 3.4.1's lm15 engine takes "user:pass@127.0.0.1" for the host name, so every call fails and the URL
    # reaches the error, the log, stdout and the report: each of them must carry it redacted
    assert r.returncode == 1, r.stderr[-2000:]
    assert f"connection failed to http://[REDACTED]@127.0.0.1:{srv.port}/v1?api_key=[REDACTED]" in r.stderr
    written = [p for p in out.rglob("*") if p.is_file()]
    names = {p.name for p in written}
    assert {"bench.json", "report.json", "report.md", "runs.csv", "benchmark.json"} <= names, names
    assert any(p.suffix == ".log" for p in written)
    for path in written:
        data = path.read_bytes()
        for secret in (password, key):
            assert secret.encode() not in data, f"{secret} leaked into {path}"
    for stream in (r.stdout, r.stderr):
        assert password not in stream and key not in stream
    asked = json.loads((out / "bench.json").read_text())["asked"]
    assert asked["api_base"] == f"http://[REDACTED]@127.0.0.1:{srv.port}/v1?api_key=[REDACTED]"


def test_answers_no_adapter_can_parse_are_failed_calls_of_kind_parse(tmp_path):
    use_plugin()
    with ChatServer(garbage=True) as srv:
        rec = run_one(RunSpec("LabeledFewShot", "_toy", "quick", lm="openai/local-model", api_base=srv.base_url),
                      tmp_path)
        served = srv.totals["requests"]
    # each of the 2 x 2 examples: ChatAdapter's answer fails to parse (a fallback: DSPy asks again through
    # JSONAdapter), then JSONAdapter's fails too (a failed call of kind parse)
    assert rec.lm_calls == served == 8 and rec.input_tokens > 0  # served and billed, but of no use
    assert rec.lm_failures.adapter_fallbacks == 4
    assert rec.lm_failures.by_kind == {"parse": 4} and rec.lm_failures.retries == 0
    assert rec.lm_failures.errored_examples == {"eval_before": 2, "eval_after": 2}
    assert rec.status == "failed" and rec.error.startswith("every LM call failed (8 of 8: answer could not be parsed")


def test_a_trained_students_calls_are_not_the_run_lms(tmp_path):
    """A weight strategy with a served LM as its teacher: the record's calls and tokens are the server's own,
    the student's generations (in the run's process, no API) are not counted among them."""
    use_plugin()
    toy = next(t for t in __import__("harness.registry", fromlist=["tasks"]).tasks().values() if t.name == "_toy")
    with ChatServer(toy.oracle()) as srv:
        rec = run_one(RunSpec("BootstrapFinetune", "_toy", "quick", lm="openai/teacher", api_base=srv.base_url),
                      tmp_path)
        totals = dict(srv.totals)
    assert rec.status == "ok", rec.error
    assert rec.training is not None and rec.training.extra["student_calls"] > 0  # the student did answer
    assert rec.lm_calls == totals["requests"] > 0
    assert rec.input_tokens == totals["prompt_tokens"] and rec.output_tokens == totals["completion_tokens"]
