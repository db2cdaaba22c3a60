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
    assert set(SHIMS) == {"mipro_permission", "evaluate_float", "gepa_reflection_lm", "parallel_overrides"}
    assert SHIMS["parallel_overrides"].applies("3.0.4") and not SHIMS["parallel_overrides"].applies("3.3.1")
    assert SHIMS["gepa_reflection_lm"].applies("3.3.1") and not SHIMS["gepa_reflection_lm"].applies("3.4.0")  # (every shim declared is applied somewhere)


def test_a_two_release_matrix_runs_each_release_in_its_own_environment(tmp_path):
    """DSPy 3.3.1 (LiteLLM only) and 3.4.1 (lm15) on one cheap strategy: each run imports its own release, is
    counted where it is served, and the matrix puts them side by side."""
    out = tmp_path / "m"
    r = harness("matrix", "--dspy", "3.3.1,3.4.1", "--strategy", "BootstrapFewShot", "--task", "math", "--out",
                str(out), timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    for release in ("3.3.1", "3.4.1"):
        (path,) = (out / release / "runs").glob("*.json")
        rec = json.loads(path.read_text())
        assert rec["status"] == "ok" and rec["software"]["packages"]["dspy"] == release, (release, rec["error"])
        assert rec["lm_kind"] == "offline-http" and rec["lm_calls"] == rec["lm_server"]["choices"] > 0
        report = json.loads((out / release / "report.json").read_text())
        assert report["software"]["packages"]["dspy"] == release
    data = json.loads((out / "matrix.json").read_text())
    assert data["releases"] == ["3.3.1", "3.4.1"]
    (row,) = data["rows"]
    assert row["strategy"] == "BootstrapFewShot" and set(row["by_release"]) == {"3.3.1", "3.4.1"}
    text = (out / "matrix.md").read_text()
    assert "## BootstrapFewShot on math" in text and "| figure | 3.3.1 | 3.4.1 |" in text
    assert "## Each release, in sum" in text and "| 3.4.1 | 1 of 1 |" in text
    check = harness("check", "--baseline", str(out / "3.3.1" / "report.json"), "--current",
                    str(out / "3.4.1" / "report.json"))
    assert check.returncode in (0, 1) and "check " in check.stdout, (check.stdout[-1500:], check.stderr[-1500:])
    (out / "matrix.md").unlink()
    again = harness("matrix", "--rebuild", "--dspy", "3.3.1,3.4.1", "--out", str(out))
    assert again.returncode == 0 and (out / "matrix.md").read_text() == text, again.stderr
    missing = harness("matrix", "--rebuild", "--dspy", "3.3.1,3.4.1:litellm", "--out", str(out))
    assert missing.returncode == 2 and "has no report of 3.4.1-litellm" in missing.stderr, missing.stderr


def test_the_weight_strategies_say_in_one_line_that_they_need_dspy_3_4(monkeypatch):
    from harness import releases

    monkeypatch.setattr(releases, "running", lambda: "3.3.1")
    with pytest.raises(HarnessError, match=r"DSPy 3\.3\.1 has none: this harness runs the weight strategies on DSPy "
                                           r"3\.4\.0 and later only"):
        releases.require_engine_api("the harness's local student LM")
    monkeypatch.setattr(releases, "running", lambda: "3.4.1")
    releases.require_engine_api("the harness's local student LM")
