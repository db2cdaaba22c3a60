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
from harness.load import load_report
from tests.helpers import ROOT
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
    for metric in ("lm_calls", "tokens", "spend_usd", "optimize_wall_s", "peak_rss_mb"):
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


def scaling_file(folder, lines: dict[tuple[str, str], list[tuple[int, float]]], profile: str = "quick") -> None:
    """A scaling.json whose (strategy, task) lines have these (n_train, calls) points; tokens, spend and time
    follow the calls (900 input and 100 output tokens and 0.01 s per call)."""
    from harness.claims.projections import fit_lines

    points = [{"strategy": s, "task": t, "profile": profile, "n_train": n, "status": "ok", "source": "scaling",
               "priced_as": "openai/gpt-4o-mini", "record": f"scaling/n{n}/runs/{s}__{t}__r0.json",
               "cost": {"lm_calls": c, "input_tokens": 900 * c, "output_tokens": 100 * c, "tokens": 1000 * c,
                        "spend_usd": c * 1.95e-4, "optimize_wall_s": 0.01 * c}}
              for (s, t), pts in lines.items() for n, c in pts]
    (folder / "scaling.json").write_text(json.dumps(
        {"kind": "dspy-resource-bench/scaling", "version": 2, "profile": profile,
         "sizes": sorted({n for pts in lines.values() for n, _ in pts}), "runs": points, "fits": fit_lines(points)}))


def scaled(folder, rep: Report | None = None):
    """The projections table and the verdicts of `rep` (default: the ORDERED bench) with folder's scaling.json."""
    result = evaluate(rep or bench(ORDERED), out=folder)
    return result.projections["scaling"], {v.claim_id: v for v in result.verdicts}


def test_t_test_and_interval_of_a_slope():
    from harness.claims.stats import t_quantile, t_sf

    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-3)  # tables of Student's t
    assert t_quantile(0.975, 10) == pytest.approx(2.2281, abs=1e-3)
    assert t_sf(2.0, 5) == pytest.approx(0.05097, abs=1e-4)
    f = linear_fit([50, 100, 200], [100, 210, 390])
    assert f.b == pytest.approx(1.9143, abs=1e-3) and f.se_b == pytest.approx(0.09897, abs=1e-4)
    assert f.p_slope == pytest.approx(0.01644, abs=1e-4)  # half scipy.stats.linregress's two-sided 0.0329
    assert f.ci_b[0] == pytest.approx(0.6567, abs=1e-3) and f.ci_b[1] == pytest.approx(3.1719, abs=1e-3)
    assert linear_fit([16, 32], [1, 9]).p_slope is None  # two points: no degree of freedom, no test


def test_scaling_projections_enter_the_verdicts(tmp_path):
    lines = {(s, "math"): [(n, 10 * c * n) for n in (16, 24, 32)] for s, c in ORDERED.items() if s not in WEIGHTS}
    scaling_file(tmp_path, lines)
    sc, v = scaled(tmp_path)
    assert "n_train=1,000" in v["prompt.cost"].figure and "fitted line" in v["prompt.cost"].figure
    assert v["prompt.cost"].verdict == CONTRADICTED  # SIMBA at 1,000 examples: 60,000 calls x 900 tokens at $2.5/M
    assert any(r.startswith("scaling/n") for r in v["prompt.cost"].key_runs)
    assert sc["profile"] == "quick" and sc["tasks"] == ["math"]


def test_a_projection_is_never_below_a_value_measured_at_a_smaller_train_set(tmp_path):
    # COPRO's scaling line grows slowly (about 1 call per example), but the report itself measured COPRO at
    # n_train=32 at 5,000 calls: the projection at 1,000 may not be less than that (standard-2core's COPRO:
    # projected $0.71 at 1,000 against $10.08 measured at 200).
    scaling_file(tmp_path, {("COPRO", "math"): [(8, 10), (16, 18), (24, 27)]})
    rep = report([record("COPRO", "math", 500)])  # 5,000 compile calls at n_train=32
    sc, _ = scaled(tmp_path, rep)
    rows = [r for r in sc["rows"] if r["strategy"] == "COPRO"]
    assert rows and all(r["lm_calls"] >= 5000 for r in rows)
    at_1000 = next(r for r in rows if r["n_train"] == 1000)
    assert at_1000["calls_rule"] == "floored" and "floored at the value measured at n_train=32" in at_1000["calls_label"]
    assert at_1000["calls_line"] < 5000  # the line alone would have projected less


def test_a_negative_slope_is_no_growth_measured_never_zero(tmp_path):
    # BootstrapFewShot's calls fall as the train set grows (it stops once it has its demos)
    scaling_file(tmp_path, {("BootstrapFewShot", "math"): [(16, 40), (24, 30), (32, 24)]})
    sc, _ = scaled(tmp_path, report([record("BootstrapFewShot", "math", 2)]))
    fit = next(f for f in sc["fits"] if f["measure"] == "lm_calls")
    assert fit["b"] < 0 and fit["growth"] == "no growth measured"
    for r in (r for r in sc["rows"] if r["strategy"] == "BootstrapFewShot"):
        assert r["calls_rule"] == "no growth measured" and "largest measured value" in r["calls_label"]
        assert r["lm_calls"] == 40 and r["spend_usd"] > 0  # the largest measured value, not 0 calls and $0


def test_a_slope_that_is_not_significant_is_no_growth_measured(tmp_path):
    scaling_file(tmp_path, {("MIPROv2", "math"): [(16, 100), (24, 60), (32, 104)]})  # scatter, no trend
    sc, _ = scaled(tmp_path, report([record("MIPROv2", "math", 2)]))
    fit = next(f for f in sc["fits"] if f["measure"] == "lm_calls")
    assert fit["b"] > 0 and fit["p_slope"] > 0.05 and fit["growth"] == "no growth measured"
    assert {r["lm_calls"] for r in sc["rows"]} == {104}


def test_fewer_than_three_sizes_are_refused(tmp_path):
    scaling_file(tmp_path, {("COPRO", "math"): [(16, 130), (32, 260)], ("SIMBA", "math"): [(16, 50), (24, 60), (32, 70)]})
    sc, v = scaled(tmp_path)
    assert {r["strategy"] for r in sc["rows"]} == {"SIMBA"}  # R^2 = 1 through two points: not projected
    assert sc["refused"] and "COPRO on math: 2 sizes" in sc["refused"][0]
    assert "not projected" in v["prompt.cost"].figure and "COPRO on math" in v["prompt.cost"].figure


def test_scaling_of_another_profile_is_not_used(tmp_path):
    scaling_file(tmp_path, {("SIMBA", "math"): [(16, 50), (24, 60), (32, 70)]}, profile="standard")
    sc, v = scaled(tmp_path)
    assert sc["label"] == "not projected" and "standard profile's budgets" in sc["reason"]
    assert "not used" in v["prompt.cost"].figure


def test_a_scaling_file_that_cannot_be_used_is_named(tmp_path):
    from harness.load import SchemaError

    (tmp_path / "scaling.json").write_text(json.dumps({"kind": "dspy-resource-bench/scaling", "runs": [
        {"strategy": "COPRO", "task": "math", "status": "ok", "n_train": 16, "cost": {"lm_calls": "many"}}]}))
    with pytest.raises(SchemaError, match=r"scaling.json: runs.0.cost.lm_calls must be a finite number"):
        evaluate(bench(ORDERED), out=tmp_path)


def test_scaling_runs_below_the_profiles_n_train_and_takes_the_benchs_records(tmp_path):
    from harness.errors import HarnessError
    from harness.scaling import bench_records, parse_sizes, plan, profile_n_train

    assert profile_n_train("standard", ["math", "classify", "multihop"]) == 200
    assert parse_sizes(None, "standard", 200) == [50, 100] and parse_sizes(None, "quick", 32) == [16, 24]
    with pytest.raises(HarnessError, match="not below the quick profile's n_train 32"):
        parse_sizes("16,32", "quick", 32)
    assert {t for _, t in plan(None, None)} == {"math", "classify", "multihop"}  # every task by default
    (tmp_path / "runs").mkdir()
    for rec in (record("COPRO", "math", 2), record("COPRO", "classify", 2, status="failed")):
        (tmp_path / "runs" / f"{rec.strategy}__{rec.task}__r0.json").write_text(rec.model_dump_json())
    found = bench_records(tmp_path, "quick", 32, [("COPRO", "math"), ("COPRO", "classify")])
    assert list(found) == [("COPRO", "math")] and found[("COPRO", "math")][0][1] == "runs/COPRO__math__r0.json"
    assert not bench_records(tmp_path, "standard", 200, [("COPRO", "math")])  # another profile's records: not a point


def test_mipro_formula_is_dspys_own():
    """The reimplementation of MIPROv2._estimate_lm_calls and of its run-mode settings against DSPy's code."""
    import random
    import re

    import dspy
    from dspy.teleprompt import MIPROv2

    from harness.claims import formulas

    class Program:
        def __init__(self, k):
            self.k = k

        def predictors(self):
            return [object()] * self.k

    lm = dspy.LM("openai/never-called")
    for k in (1, 3):
        for n_dev in (8, 25, 50, 100, 500):
            opt = MIPROv2(metric=lambda *a: 1, auto="light", prompt_model=lm, task_model=lm)
            opt.rng = random.Random(0)
            trials, valset, minibatch, n_instr, _ = opt._set_hyperparams_from_run_mode(
                Program(k), None, True, False, list(range(n_dev)), None, None)
            settings = {**formulas.settings_for("MIPROv2", "standard")}
            mode = formulas.mipro_run_mode(settings, k, n_dev)
            assert mode == {"num_trials": trials, "valset": len(valset), "minibatch": minibatch,
                            "num_instruct_candidates": n_instr}
            for mb in (True, False):
                if mb and 35 > len(valset):
                    continue
                lines = MIPROv2._estimate_lm_calls(None, Program(k), trials, mb, 35, 5, valset, True, n_instr)
                text = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(lines))
                want = [int(x) for x in re.findall(r"= (\d+) (?:prompt model|LM [Pp]rogram) calls", text)]
                assert list(formulas.mipro_estimate(k, trials, mb, 35, 5, len(valset), True, n_instr)) == want


def test_copro_formula_counts_what_copro_compile_evaluates():
    from harness.claims import formulas

    one = formulas.copro_calls({"breadth": 10, "depth": 3}, 1, 200)
    assert one.calls == 3 + 10 * 3 * 200  # 3 proposal requests, 30 candidates x 200 examples
    three = formulas.copro_calls({"breadth": 10, "depth": 3}, 3, 200)
    assert three.calls == 9 + 3 * 10 * 6 * 200 * 3  # every candidate so far re-evaluated: 108,009
    # standard-2core measured 6,229 (math) and 108,687 (multihop) at n_train 200: the formula is the floor


STANDARD = ROOT / "results" / "standard-2core"
QUICK = ROOT / "results" / "baseline" / "report.json"


@pytest.fixture(scope="module")
def standard_result():
    from harness.load import load_report

    return evaluate(load_report(STANDARD / "report.json"), out=STANDARD, against_quick=QUICK)


def test_verdicts_of_a_quick_report_are_provisional_and_of_a_standard_one_are_not(standard_result):
    quick = evaluate(bench(ORDERED), with_projections=False)
    assert quick.provisional and all(v.provisional for v in quick.verdicts)
    assert "quick profile: budgets shrunk" in quick.verdicts[0].provisional_reason
    data = quick.as_dict()
    assert data["provisional"] and all(v["provisional"] for v in data["verdicts"])
    from harness.claims.render import to_markdown

    assert "(provisional)" in to_markdown(quick) and "Every verdict below is provisional" in to_markdown(quick)
    assert not standard_result.provisional and not any(v.provisional for v in standard_result.verdicts)


def test_verdicts_that_differ_between_the_quick_and_the_standard_profile(standard_result):
    d = standard_result.profile_differences
    assert d["quick_report"] == "results/baseline/report.json" and d["quick_profile"] == "quick"
    assert d["rows"], "the committed quick and standard reports differ in some verdicts"
    for r in d["rows"]:
        assert r["standard"] != r["quick"] and r["reason"], r
    print("\n".join(f"{r['claim_id']}: standard {r['standard']}, quick {r['quick']}: {r['reason']}" for r in d["rows"]))
    # the committed reference says the same, and its report.md lists them
    committed = json.loads((STANDARD / "claims.json").read_text())
    assert [r["claim_id"] for r in committed["profile_differences"]["rows"]] == [r["claim_id"] for r in d["rows"]]
    md = (STANDARD / "report.md").read_text()
    section = md[md.index("## Verdicts that depend on the profile"):]
    assert all(f"`{r['claim_id']}`" in section for r in d["rows"])


def test_the_committed_standard_projections_never_fall_below_what_it_measured(standard_result):
    sc = standard_result.projections["scaling"]
    assert sc["profile"] == "standard" and sc["tasks"] == ["classify", "math", "multihop"]
    measured = pd.DataFrame(sc["measured"])
    assert sc["rows"]
    for r in sc["rows"]:
        assert len(r["fit_sizes"]) >= 3 and r["bench_sizes"] == [200], r
        m = measured[(measured.strategy == r["strategy"]) & (measured.task == r["task"])
                     & (measured.n_train <= r["n_train"])]
        assert r["lm_calls"] >= m["lm_calls"].max() and r["input_tokens"] + r["output_tokens"] >= m["tokens"].max(), r
    md = (STANDARD / "report.md").read_text()
    block = md[md.index("### At larger train sets"):md.index("### Weight training")]
    assert "summed over tasks" not in block and "sum over classify, math, multihop" in block
    assert "standard profile's budgets" in block and "0 calls, $0.0000" not in block


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


def test_finetune_host_ram_is_judged_on_a_real_fine_tuning_run_only(tmp_path):
    """results/real-student: BootstrapFinetune trained the pretrained SmolLM2-135M (LoRA, CPU): its host peak RSS is
    small-model evidence against "100-500 GB of system RAM"; a report whose weight runs train the toy has none."""
    real = load_report(ROOT / "results" / "real-student" / "report.json")
    v = {x.claim_id: x for x in evaluate(real, out=tmp_path, with_projections=False).verdicts}["finetune.ram"]
    rec = real.runs[0]
    assert rec.training.extra["pretrained"] and v.verdict == CONTRADICTED
    assert f"{rec.peak_rss_mb * 2**20 / 1e9:.3g} GB" in v.figure and "small-model evidence" in v.figure
    toy = load_report(ROOT / "results" / "standard-2core" / "report.json")
    w = {x.claim_id: x for x in evaluate(toy, out=tmp_path / "toy", with_projections=False).verdicts}["finetune.ram"]
    assert w.verdict == UNTESTABLE and "pretrained" in w.reason


def test_prompt_share_compares_the_best_prompt_score_with_fine_tuning_the_same_real_model(tmp_path):
    """quality.prompt_share: prompt strategies on a real LM (results/local-smollm2: SmolLM2 served, 5 test examples)
    against a weight run that fine-tuned that same model on the same test set; the offline LM's or another test
    set's scores never count."""
    prompt = load_report(ROOT / "results" / "local-smollm2" / "report.json")
    tuned = load_report(ROOT / "results" / "real-student" / "report.json").runs[0]
    best_prompt = max(r.score_after for r in prompt.runs if r.status == "ok")
    assert best_prompt > 0

    def share(**change):
        run = tuned.model_copy(update={"extra": {**tuned.extra, "student": "local/smollm2-135m"}, **change})
        rep = prompt.model_copy(update={"runs": [*prompt.runs, run]})
        return {x.claim_id: x for x in evaluate(rep, out=tmp_path, with_projections=False).verdicts}[
            "quality.prompt_share"]

    assert "no ok weight run" in share().reason  # the tuned run had 8 test examples, the prompt runs 5
    worse = share(n_test=5, score_after=best_prompt * 2)
    assert worse.verdict == CONTRADICTED and worse.data["share"] == pytest.approx(0.5)
    assert "small-model evidence" in worse.figure.lower() and tuned.run_id in worse.run_ids
    even = share(n_test=5, score_after=best_prompt * 0.5)
    assert even.verdict == HOLDS and even.data["share"] == pytest.approx(1.0)
    other = share(n_test=5, score_after=best_prompt * 2, extra={"student": "local/gemma3-270m"})
    assert other.verdict == UNTESTABLE  # another model fine-tuned: not the same model's maximum
    offline = load_report(ROOT / "results" / "local-offline" / "report.json")
    rep = offline.model_copy(update={"runs": [*offline.runs, tuned.model_copy(update={"n_test": 5})]})
    v = {x.claim_id: x for x in evaluate(rep, out=tmp_path, with_projections=False).verdicts}["quality.prompt_share"]
    assert v.verdict == UNTESTABLE and "real LM" in v.reason  # the offline LM's scores are not quality


def test_a_toy_students_time_and_ram_stay_out_of_the_verdicts(tmp_path):
    """results/standard-2core trained the random toy: the tier-order verdicts on time and RAM leave the three
    weight strategies out and say so; their LM calls (the teacher's) still count."""
    rep = load_report(ROOT / "results" / "standard-2core" / "report.json")
    assert all(r.toy_student for r in rep.runs if r.training is not None)
    v = {x.claim_id: x for x in evaluate(rep, out=tmp_path, with_projections=False).verdicts}
    for m in ("optimize_wall_s", "peak_rss_mb"):
        fig = v[f"tiers.order.{m}"].figure
        assert "left out: BetterTogether, BootstrapFinetune, GRPO (a random toy student" in fig, fig
        assert "n=12" in fig  # 15 tiered strategies less the 3 toys
    assert "left out" not in v["tiers.order.lm_calls"].figure and "n=15" in v["tiers.order.lm_calls"].figure
    assert "toy student" in v["tiers.placement.GRPO"].figure
    run = next(r for r in rep.runs if r.training is not None)
    shaped = run.model_copy(update={"training": run.training.model_copy(
        update={"extra": {**run.training.extra, "init": "config"}})})
    assert not shaped.toy_student  # a real model's shape with random weights: its time and RAM are that size's
