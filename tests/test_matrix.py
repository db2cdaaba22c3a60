"""harness matrix: the same bench against several DSPy releases, each in its own environment (uv, on first use)."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.matrix import Release, parse_releases
from harness.releases import SHIMS, has_strategy
from tests.helpers import harness


def test_releases_are_parsed_and_bad_ones_refused_in_one_line():
    assert [r.label for r in parse_releases("3.3.1, 3.4.1:litellm")] == ["3.3.1", "3.4.1:litellm"]
    assert Release.parse("3.4.1:litellm").engine == "litellm"
    for text, says in (("3.4", None), ("x.y", "not a version"), ("2.5.0", "older than the harness runs"),
                       ("3.3.1:litellm", "engines are chosen from 3.4.0"), ("3.4.1:vllm", "must be one of"),
                       ("3.4.1,3.4.1", "twice")):
        if says is None:
            assert parse_releases(text)[0].version == "3.4"
            continue
        with pytest.raises(HarnessError, match=says):
            parse_releases(text)


def test_each_release_has_the_strategies_it_shipped_and_the_shims_that_apply_to_it():
    assert not has_strategy("GEPA", "2.6.27") and has_strategy("GEPA", "3.0.0") and has_strategy("GRPO", "2.6.24")
    assert not has_strategy("GRPO", "2.6.23") and has_strategy("COPRO", "2.6.16")
    assert SHIMS["mipro_permission"].applies("2.6.27") and not SHIMS["mipro_permission"].applies("3.0.4")
    assert SHIMS["evaluate_float"].applies("2.6.27") and not SHIMS["evaluate_float"].applies("3.0.0")
    assert set(SHIMS) == {"mipro_permission", "evaluate_float", "gepa_reflection_lm", "parallel_overrides",
                          "chat_adapter_fallback", "better_together_legacy", "grpo_legacy_job"}
    assert SHIMS["chat_adapter_fallback"].applies("3.0.4") and not SHIMS["chat_adapter_fallback"].applies("3.1.0")
    assert SHIMS["better_together_legacy"].applies("3.1.3") and not SHIMS["better_together_legacy"].applies("3.2.0")
    assert SHIMS["grpo_legacy_job"].applies("2.6.27") and not SHIMS["grpo_legacy_job"].applies("3.0.0")
    assert SHIMS["parallel_overrides"].applies("3.0.4") and not SHIMS["parallel_overrides"].applies("3.3.1")
    assert SHIMS["gepa_reflection_lm"].applies("3.3.1") and not SHIMS["gepa_reflection_lm"].applies("3.4.0")  # (every shim declared is applied somewhere)


def test_a_two_release_matrix_runs_each_release_in_its_own_environment(tmp_path):
    """DSPy 2.6.27 (LiteLLM only, no engine API) and 3.4.1 (lm15) on one cheap prompt strategy and GRPO: each run
    imports its own release, is counted where it is served, and the matrix puts them side by side. On 2.6.27 the
    toy student is an LM in the forward() form and GRPO's job takes 2.6's bare groups; its teacher's calls and
    tokens and its training steps are 3.4.1's."""
    out = tmp_path / "m"
    r = harness("matrix", "--dspy", "2.6.27,3.4.1", "--strategy", "BootstrapFewShot,GRPO", "--task", "math", "--out",
                str(out), timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = {}
    for release in ("2.6.27", "3.4.1"):
        for path in (out / release / "runs").glob("*.json"):
            rec = json.loads(path.read_text())
            assert rec["status"] == "ok" and rec["software"]["packages"]["dspy"] == release, (release, rec["error"])
            assert rec["lm_kind"] == "offline-http" and rec["lm_calls"] == rec["lm_server"]["choices"] > 0
            recs[release, rec["strategy"]] = rec
        report = json.loads((out / release / "report.json").read_text())
        assert report["software"]["packages"]["dspy"] == release
    old, new = recs["2.6.27", "GRPO"], recs["3.4.1", "GRPO"]
    assert (old["lm_calls"], old["input_tokens"], old["training"]["steps"]) == \
        (new["lm_calls"], new["input_tokens"], new["training"]["steps"]) and new["training"]["steps"] > 0
    assert any("GRPO before 3.0.0 hands the job bare groups" in w for w in old["workaround"].split("; "))
    data = json.loads((out / "matrix.json").read_text())
    assert data["releases"] == ["2.6.27", "3.4.1"]
    assert {row["strategy"] for row in data["rows"]} == {"BootstrapFewShot", "GRPO"}
    assert all(set(row["by_release"]) == {"2.6.27", "3.4.1"} for row in data["rows"])
    text = (out / "matrix.md").read_text()
    assert "## BootstrapFewShot on math" in text and "| figure | 2.6.27 | 3.4.1 |" in text
    assert "## Each release, in sum" in text and "| 3.4.1 | 2 of 2 |" in text
    check = harness("check", "--baseline", str(out / "2.6.27" / "report.json"), "--current",
                    str(out / "3.4.1" / "report.json"))
    assert check.returncode in (0, 1) and "check " in check.stdout, (check.stdout[-1500:], check.stderr[-1500:])
    (out / "matrix.md").unlink()
    again = harness("matrix", "--rebuild", "--dspy", "2.6.27,3.4.1", "--out", str(out))
    assert again.returncode == 0 and (out / "matrix.md").read_text() == text, again.stderr
    missing = harness("matrix", "--rebuild", "--dspy", "2.6.27,3.4.1:litellm", "--out", str(out))
    assert missing.returncode == 2 and "has no report of 3.4.1-litellm" in missing.stderr, missing.stderr


def test_an_lm_call_a_release_calls_back_twice_for_is_counted_once():
    """DSPy 2.6.16 decorates both BaseLM.__call__ and LM.forward with callbacks: one call, two nested on_lm_start /
    on_lm_end pairs (the matrix showed 48 counted against the server's 24). A served call is counted once, at the
    outermost end; a failed one likewise."""
    import subprocess
    import sys

    code = """
import dspy
from harness.lm.usage import COUNTER as c, install_real_lm_counting
install_real_lm_counting(c)
cb = dspy.settings.callbacks[-1]
lm = dspy.LM("openai/x")
cb.on_lm_start("a", lm, {}); cb.on_lm_start("b", lm, {}); cb.on_lm_end("b", ["x"]); cb.on_lm_end("a", ["x"])
cb.on_lm_start("c", lm, {}); cb.on_lm_end("c", ["y", "z"])
cb.on_lm_start("d", lm, {}); cb.on_lm_start("e", lm, {}); cb.on_lm_end("e", None, RuntimeError("x"))
cb.on_lm_end("d", None, RuntimeError("x"))
t = c.totals()
print(t.calls, t.failed)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["3", "1"]


def test_mipro_auto_default_passes_no_budget_and_records_the_releases_choice(monkeypatch, tmp_path):
    """--set MIPROv2.auto=default: MIPROv2 built with DSPy's own defaults (no auto, candidates or trials), and the
    record says which auto the release chose ("light" on 3.4.1); the usual quick settings otherwise."""
    import dspy

    from harness.registry import get_strategy, get_task
    from harness.strategies.base import RunContext

    built: list[dict] = []
    real_init = dspy.MIPROv2.__init__

    def spy(self, **kwargs):
        built.append(kwargs)
        real_init(self, **kwargs)

    monkeypatch.setattr(dspy.MIPROv2, "__init__", spy)
    monkeypatch.setattr(dspy.MIPROv2, "compile", lambda self, program, **kw: program)
    task = get_task("math")
    for setting, auto in (({"MIPROv2": {"auto": "default"}}, "light"), ({}, None)):
        ctx = RunContext(task=task, profile="quick", trainset=[], devset=[], lm=None, workdir=tmp_path,
                         options={"set": setting}, strategy="MIPROv2")
        with dspy.context(lm=dspy.LM("openai/unused")):  # (MIPROv2 wants an LM to exist; none is called)
            get_strategy("MIPROv2").compile(ctx, task.make_program())
        if auto:
            assert set(built[-1]) == {"metric", "num_threads"} and ctx.extra["auto_default"] == auto
            assert ctx.extra["settings"] == {"auto": "default"}
        else:
            assert built[-1]["auto"] is None and built[-1]["num_candidates"] and "auto_default" not in ctx.extra
