"""Two identical runs spend the same calls and tokens: the strategies whose DSPy code draws unseeded
random numbers (AvatarOptimizer, BootstrapFewShotWithOptuna) are seeded, and the record says how."""

from __future__ import annotations

import json

from tests.helpers import harness

FIELDS = ("status", "lm_calls", "input_tokens", "output_tokens", "api_cost_usd", "score_before", "score_after")


def test_unseeded_strategies_repeat_exactly_and_name_the_workaround(tmp_path):
    out = tmp_path / "out"
    r = harness("bench", "--profile", "quick", "--strategy", "AvatarOptimizer,BootstrapFewShotWithOptuna",
                "--task", "multihop", "--repeat", "2", "--out", str(out), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for name, seeded in (("AvatarOptimizer", "random.seed("), ("BootstrapFewShotWithOptuna", "TPESampler(seed=")):
        a, b = (json.loads((out / "runs" / f"{name}__multihop__r{i}.json").read_text()) for i in (0, 1))
        assert a["status"] == "ok", a["error"]
        assert {k: a[k] for k in FIELDS} == {k: b[k] for k in FIELDS}
        assert a["lm_calls"] > 0 and seeded in a["workaround"]
