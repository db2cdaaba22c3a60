"""One LM backend, four kinds (harness.lm.backend): what each is, and the servers the harness starts itself.

The offline LM over loopback HTTP stands in for a local model's server here (no model, no compiler, no
network): it goes through the same start, health check, recording proxy, measurement and stop as
llama.cpp's server does for `--lm local/<name>`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from harness.errors import HarnessError
from harness.lm.backend import HOSTED, LOCAL, OFFLINE, OFFLINE_HTTP, backend_of, serve
from harness.lm.serve import OfflineServer
from harness.lm.serving import Ledger, Proxy
from harness.runner import RunSpec, run_one
from tests.helpers import ROOT, harness

TINY = {"n_train": 8, "n_dev": 8}


def test_each_lm_string_names_one_backend_kind():
    assert backend_of(None).kind == OFFLINE and backend_of(None).name == "offline/simulated"
    assert backend_of("offline-http").kind == OFFLINE_HTTP
    local = backend_of("local/smollm2-135m")
    assert local.kind == LOCAL and local.model_for("math") == "openai/smollm2-135m"
    assert local.client_kwargs()["engine"] == "litellm" and "max_completion_tokens" in local.workaround()
    hosted = backend_of("openai/gpt-4o-mini")
    assert hosted.kind == HOSTED and hosted.record_kind == "real" and not hosted.keyless
    assert backend_of("offline-http").model_for("math") == "openai/offline-math"
    assert [b.simulated for b in map(backend_of, (None, "offline-http", "local/gemma3-270m"))] == [True, True, False]


@pytest.mark.parametrize("lm, api_base, says", [
    ("local/smollm3", None, "unknown local model 'smollm3'; did you mean 'smollm2-135m'?"),
    ("local/smollm2-135m", "http://127.0.0.1:9/v1", "leave out --api-base"),
    (None, "http://127.0.0.1:9/v1", "--api-base needs --lm"),
    ("nonsense", None, "must be 'provider/model'"),
])
def test_a_bad_lm_is_refused_in_one_line(lm, api_base, says):
    with pytest.raises(HarnessError, match=re.escape(says)):
        backend_of(lm, api_base)


def test_the_cli_refuses_an_unknown_local_model_before_anything_runs(tmp_path):
    r = harness("run", "--strategy", "LabeledFewShot", "--task", "math", "--lm", "local/smollm3",
                "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "unknown local model 'smollm3'" in r.stderr and not (tmp_path / "out").exists()


def test_offline_http_records_what_the_server_itself_answered(tmp_path):
    """Calls and tokens counted in the run (DSPy's callbacks and usage tracker) equal the server's own usage,
    read at the recording proxy; the server's memory and time per call are in the record; the server stops."""
    with serve(backend_of("offline-http"), tmp_path) as served:
        pid = served.pid
        rec = run_one(RunSpec("BootstrapFewShot", "math", "quick", lm="offline-http", options=dict(TINY)), tmp_path,
                      served=served)
        ledger = served.ledger.since(0)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert rec.status == "ok" and rec.lm_kind == "offline-http" and rec.lm == "offline-http"
    srv = rec.lm_server
    assert srv is not None and srv.server == "offline-http" and srv.errors == 0
    assert rec.lm_calls == srv.choices == srv.calls == len(ledger) > 0
    assert rec.input_tokens == srv.prompt_tokens == sum(e.prompt_tokens for e in ledger)
    assert rec.output_tokens == srv.completion_tokens == sum(e.completion_tokens for e in ledger)
    assert srv.peak_rss_mb > 20 and srv.call_s_mean > 0 and srv.startup_s > 0
    assert rec.priced_as == "openai/gpt-4o-mini" and rec.api_cost_usd > 0  # priced as the offline LM is


def test_a_server_that_answers_one_choice_for_n_gets_asked_again(tmp_path):
    """llama.cpp returns ONE choice when asked for n > 1, silently: the proxy asks for the rest and says so. A local
    model is reached through litellm (which sends n; DSPy 3.4's lm15 engine sends n requests instead), here with
    a server command of the user's (--lm-server): the offline brain answering at most one choice."""
    one = f"{sys.executable} -m harness.lm.serve --port {{port}} --max-choices 1"
    with serve(backend_of("local/smollm2-135m"), tmp_path, server_command=one) as served:
        rec = run_one(RunSpec("COPRO", "math", "quick", lm="local/smollm2-135m", options=dict(TINY)), tmp_path,
                      served=served)
    assert rec.status == "ok", rec.error
    srv = rec.lm_server
    assert srv.server == "command" and rec.lm_kind == "local" and "max_completion_tokens" in rec.workaround
    assert srv.n_shortfalls > 0 and srv.requests > srv.calls  # COPRO asks for breadth (4) candidates at once
    assert rec.lm_calls == srv.choices  # DSPy got every completion it asked for, each served by the server
    assert rec.input_tokens == srv.prompt_tokens and rec.output_tokens == srv.completion_tokens


def test_the_proxy_copies_a_token_limit_the_server_would_ignore():
    bodies = []

    class Recording(OfflineServer):
        def complete(self, body):
            bodies.append(body)
            return super().complete(body)

    with Recording() as upstream:
        ledger = Ledger()
        proxy = Proxy(upstream.base_url, ledger).start()
        try:
            req = urllib.request.Request(f"{proxy.base_url}/chat/completions", method="POST",
                                         headers={"Content-Type": "application/json"},
                                         data=json.dumps({"model": "offline-math", "max_completion_tokens": 50,
                                                          "messages": [{"role": "user", "content": "2+2?"}]}).encode())
            with urllib.request.urlopen(req, timeout=10) as resp:
                answer = json.loads(resp.read())
        finally:
            proxy.stop()
    assert bodies[0]["max_tokens"] == 50 and answer["choices"] and answer["usage"]["prompt_tokens"] > 0
    assert ledger.entries[0].limit_added and ledger.entries[0].prompt_tokens == answer["usage"]["prompt_tokens"]


def test_a_server_that_dies_at_start_is_a_one_line_error(tmp_path):
    dead = f"{sys.executable} -c 'import sys; print(\"no model here\"); sys.exit(3)' {{port}}"
    with pytest.raises(HarnessError, match=r"exited with status 3 before answering: no model here"):
        with serve(backend_of("offline-http"), tmp_path, server_command=dead):
            pass


def test_the_server_stops_when_the_bench_is_killed(tmp_path):
    """SIGKILL leaves a bench no time to clean up: the server still goes (PR_SET_PDEATHSIG)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "bench", "--profile", "quick", "--strategy",
                             "LabeledFewShot", "--task", "math", "--lm", "offline-http", "--out", str(tmp_path / "o")],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    pid = None
    deadline = time.time() + 120
    for line in proc.stderr:
        m = re.search(r"LM server ready in [\d.]+s \(pid (\d+)\)", line)
        if m:
            pid = int(m.group(1))
            break
        assert time.time() < deadline
    assert pid is not None and psutil.pid_exists(pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(50):
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the LM server outlived the bench that started it")


# ---------------------------------------------------------------------------------------------- fidelity


def test_a_calibrated_offline_lm_answers_with_the_real_models_format_failures(tmp_path):
    cal = {"model": "local/smollm2-135m", "chat_format_fail": 1.0, "json_fail": 0.0, "accuracy_scale": 1.0}
    plain = run_one(RunSpec("LabeledFewShot", "classify", "local"), tmp_path / "plain")
    rec = run_one(RunSpec("LabeledFewShot", "classify", "local", options={"offline_calibration": cal}),
                  tmp_path / "cal")
    assert rec.status == "ok" and rec.extra["offline_calibrated_to"] == "local/smollm2-135m"
    assert plain.lm_failures.adapter_fallbacks == 0
    # every ChatAdapter answer is unformatted, so each call becomes two: DSPy asks again through JSONAdapter
    assert rec.lm_calls == 2 * plain.lm_calls and rec.lm_failures.adapter_fallbacks == plain.lm_calls
    assert rec.lm_failures.failed_calls == 0 and rec.score_before is not None  # JSONAdapter's prompts answer


def test_a_calibrated_answer_length_lengthens_answers_and_changes_nothing_else(tmp_path):
    """output_tokens_per_call (a rambling real model's) lengthens the offline LM's shorter answers with text no
    adapter reads: the same calls, fallbacks, failures and scores, about that many output tokens per call."""
    cal = {"model": "m", "chat_format_fail": 0.5, "json_fail": 0.5, "accuracy_scale": 1.0}
    short = run_one(RunSpec("BootstrapFewShot", "classify", "local", options={"offline_calibration": cal}),
                    tmp_path / "short")
    rec = run_one(RunSpec("BootstrapFewShot", "classify", "local",
                          options={"offline_calibration": {**cal, "output_tokens_per_call": 200.0}}), tmp_path / "long")
    assert short.status == rec.status == "ok" and short.lm_failures.adapter_fallbacks > 0
    same = ("lm_calls", "input_tokens", "score_before", "score_after")
    assert [getattr(rec, k) for k in same] == [getattr(short, k) for k in same]
    assert rec.lm_failures.model_dump() == short.lm_failures.model_dump()
    # JSON answers that parse are left short, so the mean is under 200 but far above the unlengthened one
    assert short.output_tokens / short.lm_calls < 80 < 150 < rec.output_tokens / rec.lm_calls < 260


def test_a_bad_calibration_file_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "cal.json"
    bad.write_text('{"kind": "dspy-resource-bench/calibration", "model": "x", "chat_format_fail": 7}')
    r = harness("run", "--strategy", "LabeledFewShot", "--task", "classify", "--profile", "local",
                "--offline-calibration", str(bad), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "chat_format_fail must be a number in range, got 7" in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_a_bare_assert_over_a_models_error_is_named_with_that_error():
    """DSPy's InferRules turns an unparsable answer into a bare AssertionError (infer_rules.py:69): the run's
    one-line error still says what happened."""
    from harness.child import one_line

    try:
        try:
            raise ValueError("Adapter JSONAdapter failed to parse the LM response")
        except Exception:
            raise AssertionError  # what infer_rules.py's failing `assert isinstance(e, ValueError) or ...` raises
    except AssertionError as exc:
        line = one_line(exc)
    assert line == "AssertionError raised while handling ValueError: Adapter JSONAdapter failed to parse the LM response"


def test_fidelity_of_the_committed_real_model_bench():
    """results/local-smollm2 (SmolLM2-135M on llama.cpp) against results/local-offline (the offline LM), the
    same profile: a row per strategy that ran ok in both, ratios from the records, a calibration that matches
    what the real model's records count."""
    from harness.fidelity import _load, calibration_of, fidelity, markdown

    offline, real = _load(ROOT / "results/local-offline"), _load(ROOT / "results/local-smollm2")
    fid = fidelity(offline, real)
    assert real.lm == "local/smollm2-135m" and offline.profile == real.profile == "local"
    ok_real = {r.strategy for r in real.runs if r.status == "ok"}
    assert {row["strategy"] for row in fid["rows"]} == ok_real and fid["rows"]
    for row in fid["rows"]:
        assert row["calls_ratio"] == round(row["calls_real"] / row["calls_offline"], 3)
        assert row["within"] == (abs(row["calls_ratio"] - 1) <= 0.25) and (row["within"] or row["why"])
    cal = calibration_of(real, offline)
    runs = [r for r in real.runs if r.status == "ok"]
    fallbacks = sum(r.lm_failures.adapter_fallbacks for r in runs)
    assert fallbacks > 0 and cal["chat_format_fail"] == round(fallbacks / (sum(r.lm_calls for r in runs) - fallbacks), 4)
    assert "| strategy | task | calls offline |" in markdown(fid)
    # every record of the real bench: its calls and tokens are what the server itself answered
    for r in real.runs:
        assert r.lm_server is not None and r.lm_server.server == "llama.cpp" and r.lm_server.peak_rss_mb > 100
        assert r.lm_calls == r.lm_server.choices
        assert (r.input_tokens, r.output_tokens) == (r.lm_server.prompt_tokens, r.lm_server.completion_tokens)


def test_fidelity_writes_the_calibration_only_against_the_plain_offline_lm(tmp_path):
    """Against an offline bench already calibrated, accuracy_scale would be relative to the calibrated LM (0 over
    0: none), so that fidelity writes no calibration.json and cannot overwrite the real one."""
    r = harness("fidelity", str(ROOT / "results/local-calibrated"), str(ROOT / "results/local-smollm2"),
                "--out", str(tmp_path / "cal"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "cal" / "fidelity-calibrated.md").exists() and not (tmp_path / "cal" / "calibration.json").exists()
    r = harness("fidelity", str(ROOT / "results/local-offline"), str(ROOT / "results/local-smollm2"),
                "--out", str(tmp_path / "plain"))
    assert r.returncode == 0, r.stderr
    cal = json.loads((tmp_path / "plain" / "calibration.json").read_text())
    assert cal["accuracy_scale"] == 0.0 and cal["output_tokens_per_call"] > 0  # SmolLM2 scored 0 before, offline not
    assert cal == json.loads((ROOT / "results/local-smollm2/calibration.json").read_text())


def test_each_run_on_a_shared_offline_server_starts_its_sampling_afresh(tmp_path):
    """A bench serves every run from one offline-http server: a run's sampled answers (COPRO samples its
    candidates at temperature > 0) must not depend on the runs before it, as with a fresh in-process engine."""
    with serve(backend_of("offline-http"), tmp_path) as served:
        first, second = (run_one(RunSpec("COPRO", "math", "quick", repeat=i, lm="offline-http", options=dict(TINY)),
                                 tmp_path, served=served) for i in (0, 1))
    inproc = run_one(RunSpec("COPRO", "math", "quick", options=dict(TINY)), tmp_path / "inproc")
    for figure in ("lm_calls", "input_tokens", "output_tokens", "score_after"):
        assert getattr(first, figure) == getattr(second, figure) == getattr(inproc, figure), figure


def test_llama_cpp_by_default_and_transformers_serve_where_no_compiler_is_at_hand(monkeypatch, tmp_path):
    """A local model is served by llama.cpp where it is installed or can be built; with no cmake or compiler on
    PATH (and none installed), or when asked with --lm-server transformers, by transformers serve, which cannot
    serve a base model without a chat template (a one-line error)."""
    import importlib.util

    from harness.lm import local

    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real_find(name, *a))
    monkeypatch.setattr(local.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert local.server_engine() == local.LLAMA_CPP and local.server_engine("transformers") == local.TRANSFORMERS
    monkeypatch.setattr(local.shutil, "which", lambda name: None if name == "cmake" else f"/usr/bin/{name}")
    assert not local.can_build_llama_cpp() and local.server_engine() == local.TRANSFORMERS
    with pytest.raises(HarnessError, match="gemma3-270m is a base model with no chat template"):
        local.transformers_server(local.get_model("gemma3-270m"), lambda m: None)
    monkeypatch.setattr(local, "MODELS_DIR", tmp_path)  # (a folder made from the GGUF is found where it was made)
    (tmp_path / "smollm2-135m-hf").mkdir()
    (tmp_path / "smollm2-135m-hf" / "config.json").write_text("{}")
    cmd, cwd = local.transformers_server(local.get_model("smollm2-135m"), lambda m: None)
    assert cmd[1:3] == ["serve", "--host"] and cmd[-1] == "smollm2-135m" and "{port}" in cmd
    assert (cwd / "smollm2-135m").resolve() == (tmp_path / "smollm2-135m-hf").resolve()
