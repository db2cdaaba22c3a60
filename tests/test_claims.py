"""Verdict logic on small reports built in code: tiers that hold and that are contradicted, ranges, counts,
claims without data, and the `claims` command's output."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

import pandas as pd
import pytest

from harness.claims import evaluate, main_claims
from harness.claims.spec import load_claims
from harness.claims.stats import average_ranks, linear_fit, spearman
from harness.claims.verdict import CONTRADICTED, HOLDS, UNTESTABLE, Verdict, judge_range
from harness.record import (GitInfo, LMUsage, MachineInfo, Measurement, Phase, Report, RunRecord, SoftwareInfo,
                            TrainingInfo)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
MACHINE = MachineInfo(machine_id="test", hostname="test", cpu_model="Test CPU", cpu_cores_logical=4,
                      cpu_cores_usable=4, ram_mb=16000, gpus=[], gpu_note="no NVIDIA GPU", os="Linux", arch="x86_64")
SOFTWARE = SoftwareInfo(python="3.11", packages={"dspy": "3.4.1"})
GIT = GitInfo(commit=None, dirty=None)


def record(strategy: str, task: str, cost: float, *, rss: float = 150.0, trained: bool = False, status: str = "ok",
           repeat: int = 0, gpu: bool = False) -> RunRecord:
    """A run whose compile phase makes `cost` x 10 calls and `cost` x 1000 tokens and takes `cost` seconds."""
    calls, tin, tout = int(10 * cost), int(900 * cost), int(100 * cost)
    usage = LMUsage(lm_calls=calls, input_tokens=tin, output_tokens=tout, api_cost_usd=tin * 1.5e-7 + tout * 6e-7)
    ev = LMUsage(lm_calls=24, input_tokens=9000, output_tokens=1000, api_cost_usd=0.002)
    phases = [Phase(name="setup", wall_s=1.0, cpu_s=1.0, rss_end_mb=100, hwm_mb=100),
              Phase(name="eval_before", wall_s=0.1, cpu_s=0.1, rss_end_mb=rss, hwm_mb=rss, usage=ev),
              Phase(name="compile", wall_s=float(cost), cpu_s=float(cost), rss_end_mb=rss, hwm_mb=rss, usage=usage),
              Phase(name="eval_after", wall_s=0.1, cpu_s=0.1, rss_end_mb=rss, hwm_mb=rss, usage=ev)]
    if status != "ok":
        phases = phases[:2]
    training = TrainingInfo(student="tiny", mode="full", device="cpu", dtype="float32", total_params=250_000,
                            trainable_params=250_000, steps=12, examples=40, tokens=10_000, train_s=1.0,
                            checkpoint_bytes=1_000_000, jobs=1) if trained else None
    total = usage + ev + ev
    return RunRecord(run_id=f"{strategy}__{task}__r{repeat}", strategy=strategy, task=task, profile="quick", repeat=repeat,
                     status=status, error=None if status == "ok" else "RuntimeError: boom", started_at=T0,
                     finished_at=T0, timeout_s=240, wall_s=float(cost) + 1.2, cpu_s=float(cost) + 1.2, peak_rss_mb=rss,
                     gpu_peak_mb=512.0 if gpu else None, disk_written_mb=0.5, lm="offline/simulated", lm_kind="offline",
                     priced_as="openai/gpt-4o-mini", lm_calls=total.lm_calls, input_tokens=total.input_tokens,
                     output_tokens=total.output_tokens, api_cost_usd=total.api_cost_usd, score_before=50.0,
                     score_after=70.0, n_train=32, n_dev=16, n_test=24, phases=phases, training=training,
                     measurement=Measurement(peak_rss_method="VmHWM (test)", sample_interval_s=0.05, cpu_method="test",
                                             disk_method="test", gpu_method="no NVIDIA GPU"),
                     machine=MACHINE, software=SOFTWARE, git=GIT)


def report(runs: list[RunRecord], gpus: bool = False) -> Report:
    machine = MACHINE if not gpus else MACHINE.model_copy(update={"gpus": [{"name": "Test GPU", "memory_mb": 24000}]})
    return Report(created_at=T0, profile="quick", lm="offline/simulated", priced_as="openai/gpt-4o-mini",
                  machine=machine, software=SOFTWARE, git=GIT, runs=runs, expected_runs=[r.run_id for r in runs])


# One strategy per tier and more: cost rises with the claimed tier (tier ranks 1, 2, 2, 3, 3, 4, 5).
ORDERED = {"LabeledFewShot": 1, "BootstrapFewShot": 2, "COPRO": 3, "MIPROv2": 5, "SIMBA": 6,
           "BootstrapFinetune": 8, "GRPO": 10}
WEIGHTS = {"BootstrapFinetune", "GRPO", "BetterTogether"}


def bench(costs: dict[str, float], tasks=("math", "classify"), **kw) -> Report:
    return report([record(s, t, c, trained=s in WEIGHTS, rss=100 + 10 * c) for s, c in costs.items() for t in tasks],
                  **kw)


def verdicts(rep: Report, out=None) -> dict[str, Verdict]:
    return {v.claim_id: v for v in evaluate(rep, out=out, with_projections=False).verdicts}


@pytest.fixture(scope="module")
def ordered() -> dict[str, Verdict]:
    return verdicts(bench(ORDERED))


@pytest.fixture(scope="module")
def reversed_() -> dict[str, Verdict]:
    return verdicts(bench({s: 11 - c for s, c in ORDERED.items()}))


# --------------------------------------------------------------------------- statistics


def test_spearman_and_ranks():
    assert average_ranks([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    x, y = [1, 2, 2, 3, 3, 4, 5], [3, 1, 4, 1, 5, 9, 2]
    s = spearman(x, y)
    assert s.rho == pytest.approx(pd.Series(x).corr(pd.Series(y), method="spearman"))
    perfect = spearman([1, 2, 3, 4, 5, 6], [10, 20, 30, 40, 50, 60])
    assert perfect.rho == pytest.approx(1.0) and perfect.p_greater < 0.01
    assert spearman([1, 2, 3], [5, 5, 5]).p_greater is None  # constant side: undefined, not a number


def test_linear_fit():
    f = linear_fit([16, 32, 64], [7 + 8 * 16, 7 + 8 * 32, 7 + 8 * 64])
    assert (f.a, f.b, f.r2) == (pytest.approx(7), pytest.approx(8), pytest.approx(1.0))
    assert linear_fit([16, 32], [5, 5]).r2 is None  # nothing to explain
    assert linear_fit([16, 16], [1, 2]) is None


# --------------------------------------------------------------------------- verdict rules


def test_a_verdict_needs_a_figure_or_a_reason():
    with pytest.raises(ValueError):
        Verdict("x", "s", "claim", "study", HOLDS, figure=None, basis="measured")
    with pytest.raises(ValueError):
        Verdict("x", "s", "claim", "study", CONTRADICTED, figure="3 GB", basis="guessed")
    with pytest.raises(ValueError):
        Verdict("x", "s", "claim", "study", UNTESTABLE)


def test_range_rules():
    assert judge_range(0.1, 0.8, 8, 32, "upper").ok  # far below an 'adequate' range: the lower end is pessimistic
    assert "pessimistic" in judge_range(0.1, 0.8, 8, 32, "upper").note
    assert not judge_range(1, 40, 8, 32, "upper").ok  # above the ceiling contradicts
    assert not judge_range(3, 900, 80, 800, "lower").ok  # a case needing less than the 'required' floor
    assert judge_range(100, 900, 80, 800, "lower").ok  # above the top of a floor claim is only reported
    assert judge_range(100, 700, 80, 800, "both").ok and not judge_range(10, 700, 80, 800, "both").ok


# --------------------------------------------------------------------------- tiers


def test_tier_ordering_holds_when_cost_rises_with_tier(ordered):
    for metric in ("lm_calls", "tokens", "spend_usd", "wall_s", "peak_rss_mb"):
        v = ordered[f"tiers.order.{metric}"]
        assert v.verdict == HOLDS, v.figure
        assert v.data["overall"]["rho"] > 0.9 and v.data["overall"]["p"] < 0.05
        assert set(v.data["per_task"]) == {"math", "classify"}
        assert v.run_ids and "rho" in v.figure
    assert all(ordered[f"tiers.placement.{s}"].verdict == HOLDS for s in ORDERED)


def test_tier_ordering_contradicted_when_cost_falls_with_tier(reversed_):
    v = reversed_["tiers.order.lm_calls"]
    assert v.verdict == CONTRADICTED and v.data["overall"]["rho"] < 0
    out = reversed_["tiers.placement.LabeledFewShot"]  # the dearest of all, in the cheapest tier
    assert out.verdict == CONTRADICTED and "dearer than its tier" in out.figure
    assert reversed_["tiers.placement.GRPO"].verdict == CONTRADICTED


def test_a_strategy_without_runs_is_untestable_with_its_reason(ordered):
    v = ordered["tiers.placement.KNNFewShot"]
    assert v.verdict == UNTESTABLE and v.reason == "no run of this strategy in the report"
    costs = dict(ORDERED)
    rep = bench(costs)
    rep.runs.append(record("InferRules", "math", 2, status="failed"))
    v = verdicts(rep)["tiers.placement.InferRules"]
    assert v.verdict == UNTESTABLE and "RuntimeError: boom" in v.reason


# --------------------------------------------------------------------------- the other checks


def test_prompt_profile_ranges(ordered):
    ram = ordered["prompt.ram"]
    assert ram.verdict == HOLDS and ram.basis == "measured" and "pessimistic" in ram.figure
    assert ram.data["max"] == pytest.approx(160 * 1024 * 1024 / 1e9)  # SIMBA's 160 MiB
    gpu = ordered["prompt.gpu"]
    assert gpu.verdict == HOLDS and gpu.data["max"] == 0 and "no GPU" in gpu.figure
    cost = ordered["prompt.cost"]
    assert cost.verdict == HOLDS and cost.basis == "projected" and "scaling" in cost.figure


def test_prompt_ram_over_the_range_is_contradicted():
    costs = dict(ORDERED)
    rep = bench(costs)
    rep.runs.append(record("InferRules", "math", 3, rss=40 * 1024))  # 40 GiB: over 32 GB
    v = verdicts(rep)["prompt.ram"]
    assert v.verdict == CONTRADICTED and v.key_runs[0] == "InferRules__math__r0"


def test_gpu_figures_are_used_when_there_is_a_gpu():
    rep = bench(ORDERED, gpus=True)
    v = verdicts(rep)["prompt.gpu"]
    assert v.verdict == UNTESTABLE  # a GPU machine whose runs recorded no GPU figure
    rep = report([record(s, "math", c, trained=s in WEIGHTS, gpu=True) for s, c in ORDERED.items()], gpus=True)
    v = verdicts(rep)["prompt.gpu"]
    assert v.verdict == HOLDS and v.data["max"] == pytest.approx(512 * 1024 * 1024 / 1e9)


def test_claims_without_data_are_untestable_with_a_reason():
    only_weights = verdicts(bench({"BootstrapFinetune": 3, "GRPO": 4}))
    for cid in ("prompt.ram", "prompt.cost", "prompt.no_gradients", "prompt.laptop", "tiers.order.lm_calls"):
        v = only_weights[cid]
        assert v.verdict == UNTESTABLE and v.reason and v.figure is None, cid
    assert only_weights["finetune.ram"].verdict == UNTESTABLE and "GPU" in only_weights["finetune.ram"].reason
    assert only_weights["quality.prompt_share"].verdict == UNTESTABLE


def test_statements_from_records(ordered):
    assert ordered["prompt.no_gradients"].verdict == HOLDS
    assert "0 of 10" in ordered["prompt.no_gradients"].figure and "12-12 optimizer steps" in ordered["prompt.no_gradients"].figure
    assert ordered["prompt.inference_only"].verdict == HOLDS
    assert ordered["prompt.laptop"].verdict == HOLDS
    # 7 of 15 strategies measured: the counts depend on the 8 without runs
    assert ordered["count.weights"].verdict == UNTESTABLE and "without an ok run" in ordered["count.weights"].reason
    assert ordered["prompt.size_invariant_cost"].verdict == CONTRADICTED  # gpt-4o costs x16.7 gpt-4o-mini


def test_a_prompt_strategy_that_trains_contradicts_no_gradients():
    rep = bench(ORDERED)
    rep.runs.append(record("COPRO", "multihop", 2, trained=True))
    v = verdicts(rep)["prompt.no_gradients"]
    assert v.verdict == CONTRADICTED and v.key_runs == ["COPRO__multihop__r0"]


def test_counts_with_every_strategy_measured():
    names = list(load_claims().strategies)
    rep = report([record(s, "math", 2, trained=s in WEIGHTS) for s in names])
    v = verdicts(rep)
    assert v["count.weights"].verdict == CONTRADICTED and "3 trained weights" in v["count.weights"].figure
    assert v["count.prompt"].verdict == CONTRADICTED and v["count.prompt"].data["prompt_only"].__len__() == 12


def test_weight_claims_are_projected_and_labelled(ordered):
    for cid in ("finetune.gpu", "finetune.storage", "finetune.time", "finetune.cost", "size.small.finetune",
                "size.medium.finetune", "size.large.finetune"):
        v = ordered[cid]
        assert v.verdict in (HOLDS, CONTRADICTED) and v.method.startswith("projected"), cid
        assert v.basis in ("projected", "measured + projected"), cid  # measured: the committed H200 step times
    assert ordered["size.small.finetune"].verdict == HOLDS  # LoRA/QLoRA fit one 48 GB GPU at 1-7B
    assert ordered["size.medium.finetune"].verdict == CONTRADICTED  # 13B LoRA fits on one 80 GB GPU
    # no finetune_memory.json beside the report: the committed H200 measurements check the model, named as such
    assert "cuda/full: measured slope" in ordered["finetune.gpu"].figure


def test_every_claim_in_the_file_gets_a_verdict(ordered):
    cf = load_claims()
    ids = {v.split(".")[0] + "." + v.split(".")[1] if v.startswith("tiers.") else v for v in ordered}
    assert {c.id for c in cf.claims} <= ids
    assert len(cf.strategies) == 15 and set(cf.tiers) == {s.tier for s in cf.strategies.values()}


def test_scaling_projections_enter_the_verdicts(tmp_path):
    from harness.scaling import fit_points

    points = [{"strategy": s, "task": "math", "n_train": n, "status": "ok", "priced_as": "openai/gpt-4o-mini",
               "record": f"scaling/n{n}/runs/{s}__math__r0.json",
               "cost": {"lm_calls": 10 * c * n, "input_tokens": 9000 * c * n, "output_tokens": 1000 * c * n,
                        "tokens": 10000 * c * n, "spend_usd": 0.002 * c * n, "wall_s": 0.1 * n}}
              for s, c in ORDERED.items() if s not in WEIGHTS for n in (16, 32, 64)]
    (tmp_path / "scaling.json").write_text(json.dumps(
        {"kind": "dspy-resource-bench/scaling", "sizes": [16, 32, 64], "runs": points, "fits": fit_points(points)}))
    v = verdicts(bench(ORDERED), out=tmp_path)
    assert "n_train=1,000" in v["prompt.cost"].figure
    assert v["prompt.cost"].verdict == CONTRADICTED  # SIMBA at 1,000 examples: 6 x 9M input tokens at $3/M
    assert any(r.startswith("scaling/n") for r in v["prompt.cost"].key_runs)


def test_main_claims_prints_markdown_and_json(tmp_path, capsys):
    path = tmp_path / "report.json"
    path.write_text(bench(ORDERED).model_dump_json())
    assert main_claims(argparse.Namespace(report=str(path), claims=None, format="md")) == 0
    md = capsys.readouterr().out
    assert md.startswith("# Claims: verdicts") and "| claim | the study says | verdict |" in md
    assert main_claims(argparse.Namespace(report=str(path), claims=None, format="json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["holds"] > 0
    for v in data["verdicts"]:
        assert v["verdict"] == UNTESTABLE or (v["figure"] and v["basis"]), v["claim_id"]
    assert data["projections"]["prices"]["models"]["openai/gpt-4o"]["input_usd_per_mtok"] == pytest.approx(2.5)
