"""Every registered strategy, built-in or not, runs once end to end on a tiny budget.

Each is a real measured run (its own process tree, the offline LM, the quick profile's budgets on 8
training and 8 dev examples) that must end ok, score the program before and after, count the LM calls
it made and record no failed LM call. A strategy added to the registry is picked up here by itself.

Then every prompt strategy runs again with the offline LM over loopback HTTP (the path every DSPy release takes,
harness matrix's): the same calls, tokens, spend and scores as in process, so that a figure measured over HTTP is
DSPy's, not the transport's.
"""

from __future__ import annotations

import pytest

from harness import registry
from harness.lm.backend import backend_of, serve
from harness.load import load_record
from harness.runner import RunSpec, run_one

TINY = {"n_train": 8, "n_dev": 8}  # 8: SIMBA's and MIPROv2's quick mini-batches


def _cases() -> list[tuple[str, str]]:
    known = registry.strategies()
    tasks = [t for t in registry.tasks() if not t.startswith("_")]
    out = []
    for name, strategy in known.items():
        if name.startswith("_"):
            continue
        task = next(t for t in ("math", *tasks) if strategy.runs_on(t))
        out.append((name, task))
    return out


CASES = _cases()


def test_the_smoke_test_covers_every_registered_strategy():
    names = {n for n in registry.strategies() if not n.startswith("_")}
    assert {s for s, _ in CASES} == names and len(names) >= 15


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke")


@pytest.mark.parametrize("strategy,task", CASES, ids=[s for s, _ in CASES])
def test_every_strategy_runs_once(out, strategy, task):
    rec = run_one(RunSpec(strategy=strategy, task=task, profile="quick", options=dict(TINY)), out)
    assert rec.status == "ok", f"{rec.run_id}: {rec.status}: {rec.error}"
    assert rec.n_train == TINY["n_train"] and rec.n_dev == TINY["n_dev"]
    assert rec.score_before is not None and rec.score_after is not None
    assert rec.lm_calls and rec.lm_calls > 0 and rec.input_tokens > 0 and rec.output_tokens > 0
    assert [p.name for p in rec.phases] == ["setup", "eval_before", "compile", "eval_after"]
    assert rec.peak_rss_mb > 0 and rec.wall_s > 0 and rec.cpu_s > 0
    failures = getattr(rec, "lm_failures", None)
    if failures is not None:  # counted since schema 3: the offline LM never fails a call
        assert not failures.failed_calls, failures
    if registry.get_strategy(strategy).kind != "prompt":
        assert rec.training is not None and rec.training.steps > 0


PROMPT_CASES = [(s, t) for s, t in CASES if registry.get_strategy(s).kind == "prompt"]
SAME = ("status", "lm_calls", "input_tokens", "output_tokens", "api_cost_usd", "score_before", "score_after")


@pytest.fixture(scope="module")
def served(out):
    with serve(backend_of("offline-http"), out / "http") as srv:
        yield srv


@pytest.mark.parametrize("strategy,task", PROMPT_CASES, ids=[s for s, _ in PROMPT_CASES])
def test_every_prompt_strategy_over_http_equals_it_in_process(out, served, strategy, task):
    spec = RunSpec(strategy=strategy, task=task, profile="quick", options=dict(TINY))
    path = out / "runs" / f"{spec.run_id}.json"  # the in-process run above (run here if it was not)
    inproc = load_record(path) if path.exists() else run_one(spec, out)
    http = run_one(RunSpec(strategy=strategy, task=task, profile="quick", lm="offline-http", options=dict(TINY)),
                   out / "http", served=served)
    assert http.status == "ok" and http.lm_kind == "offline-http", http.error
    assert {f: getattr(http, f) for f in SAME} == {f: getattr(inproc, f) for f in SAME}
    assert http.lm_calls == http.lm_server.calls  # (and counted where served)


def test_every_prompt_strategy_is_held_to_the_transport():
    assert len(PROMPT_CASES) >= 13 and "AvatarOptimizer" in {s for s, _ in PROMPT_CASES}
