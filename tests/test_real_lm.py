"""A real LM through DSPy's own client: a local OpenAI-compatible server started by the test on 127.0.0.1."""

from __future__ import annotations

import json

from harness.runner import RunSpec, run_one
from harness.tasks.registry import TASKS
from tests.helpers import harness
from tests.openai_server import ChatServer

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
