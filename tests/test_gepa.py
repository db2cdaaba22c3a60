"""GEPA, the 16th strategy (not in the study): it runs on every task at the quick profile with its metric calls,
reflection-LM calls and program calls recorded apart; its metric gives feedback text from each task's own check;
the offline LM answers GEPA's reflection prompts (DSPy's and gepa's own); two runs are identical; a report holding
only GEPA runs (and one beside a study strategy) renders report.md, the plots, the claims, compare and check."""

from __future__ import annotations

import json

import dspy
import pytest

from harness import cli, registry
from harness.claims.spec import NOT_IN_STUDY
from harness.errors import HarnessError
from harness.files import atomic_write_text
from harness.lm.brain import Brain, Generic, Rand, feedback_notes
from harness.record import RunRecord
from harness.report import build_report, write_outputs
from harness.runner import RunSpec, run_one
from harness.strategies.gepa import QUICK_METRIC_CALLS, budget_options, feedback_metric, overshoot_bound
from harness.tasks.oracles import ClassifyOracle, MathOracle

TASKS = ("math", "classify", "multihop")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, RunRecord]:
    out = tmp_path_factory.mktemp("gepa")
    return {t: run_one(RunSpec(strategy="GEPA", task=t, profile="quick"), out) for t in TASKS}


@pytest.mark.parametrize("task", TASKS)
def test_gepa_runs_on_every_task_with_its_counts_apart(runs, task):
    rec = runs[task]
    assert rec.status == "ok", rec.error
    b = rec.budget
    assert b is not None and b.optimizer == "GEPA" and b.asked == f"max_metric_calls={QUICK_METRIC_CALLS}"
    assert b.metric_call_budget == QUICK_METRIC_CALLS and b.candidates >= 1 and b.full_val_evals >= 1
    # GEPA checks its budget between iterations: it stops at or past it, by at most one iteration.
    assert b.metric_call_budget <= b.metric_calls <= b.metric_call_budget + overshoot_bound(rec.n_dev)
    assert b.reflection.lm_calls > 0 and b.task.lm_calls > b.reflection.lm_calls
    compile_usage = rec.phase("compile").usage
    assert b.reflection.lm_calls + b.task.lm_calls == compile_usage.lm_calls
    assert b.reflection.input_tokens + b.task.input_tokens == compile_usage.input_tokens
    assert b.reflection.output_tokens + b.task.output_tokens == compile_usage.output_tokens
    predictors = len(registry.get_task(task).make_program().predictors())
    assert b.task.lm_calls >= b.metric_calls * predictors  # every metric call is one program run


def test_two_runs_are_identical(runs, tmp_path):
    again = run_one(RunSpec(strategy="GEPA", task="math", profile="quick"), tmp_path)
    first = runs["math"]
    for name in ("lm_calls", "input_tokens", "output_tokens", "api_cost_usd", "score_before", "score_after"):
        assert getattr(again, name) == getattr(first, name), name
    assert again.budget == first.budget
    assert first.workaround is None  # GEPA's own seed (0) makes it deterministic: nothing to work around


def _example(task: str, split: str = "dev"):
    return registry.get_task(task).examples(split, "quick")[0]


def test_the_feedback_metric_returns_the_score_and_text_from_the_task_check():
    for task in TASKS:
        t = registry.get_task(task)
        gold = _example(task)
        metric = feedback_metric(t)
        right = metric(gold, dspy.Prediction(**{t.answer_key: gold[t.answer_key]}), None, None, None)
        wrong = metric(gold, dspy.Prediction(**{t.answer_key: "nothing like it"}), None, None, None)
        assert right.score == 1.0 and right.feedback.startswith("Correct")
        assert wrong.score == 0.0 and wrong.feedback.startswith("Wrong") and str(gold[t.answer_key]) in wrong.feedback


def test_multihop_feedback_says_which_hop_failed():
    t = registry.get_task("multihop")
    gold = _example("multihop")
    row = next(r for r in t.rows("dev") if r["question"] == gold.question)
    hop1, bridge = row["hops"][0], row["bridge"]

    def feedback(context: list[str]) -> str:
        trace = [(None, {"question": gold.question, "context": context}, dspy.Prediction(answer="x"))]
        return feedback_metric(t)(gold, dspy.Prediction(answer="x"), trace, None, None).feedback

    assert "first search did not retrieve" in feedback(["Unrelated | nothing here"])
    assert "second search did not retrieve" in feedback([f"{hop1} | It was made by {bridge}."])
    assert "Both documents were retrieved" in feedback([f"{hop1} | By {bridge}.", f"{bridge} | {gold.answer}."])


def test_the_offline_lm_answers_gepa_reflection_with_a_better_instruction():
    brain = Brain(MathOracle())
    current = "Given the fields `question`, produce the fields `answer`."
    wrong = "Wrong: the expected answer is 500, but the final number given is 498 (off by -2)."
    proposals = [brain.generic.reflect(current, [wrong, wrong, "Correct: the final number is 7."], Rand(str(i)))
                 for i in range(40)]
    assert all(p.startswith(current) and len(p) > len(current) for p in proposals)
    with_hint = sum(any(h in p for h in MathOracle.hint_phrases) for p in proposals)
    bare_score = ["This trajectory got a score of 0.0."] * 2
    bare = [brain.generic.reflect(current, bare_score, Rand(str(i))) for i in range(40)]
    bare_hint = sum(any(h in p for h in MathOracle.hint_phrases) for p in bare)
    assert with_hint > bare_hint > 0  # feedback in words teaches more than a bare score
    assert Generic(ClassifyOracle()).reflect("x.", [], Rand("k")).startswith("x.")  # nothing failed: kept


def test_the_offline_lm_answers_gepas_own_raw_reflection_prompt():
    from gepa.strategies.instruction_proposal import InstructionProposalSignature as Sig

    prompt = Sig.prompt_renderer({"current_instruction_doc": "Solve the problem.",
                                  "dataset_with_feedback": [{"Inputs": {"question": "1+1?"},
                                                             "Generated Outputs": {"answer": "3"},
                                                             "Feedback": "Wrong: the expected answer is 2."}]})
    assert feedback_notes(prompt.split("```")[3]) == ["Wrong: the expected answer is 2."]
    reply = Brain(MathOracle()).reply("", [("user", prompt)], "t0")
    new = Sig.output_extractor(reply)["new_instruction"]
    assert reply.startswith("```") and new.startswith("Solve the problem.") and len(new) > len("Solve the problem.")


@pytest.mark.parametrize("options,message", [
    ({"auto": "huge"}, "--auto must be light, medium or heavy"),
    ({"max_metric_calls": "0"}, "--max-metric-calls must be a whole number"),
    ({"max_metric_calls": "1e3"}, "--max-metric-calls must be a whole number"),
    ({"max_metric_calls": True}, "--max-metric-calls must be a whole number"),
    ({"auto": "light", "max_metric_calls": 10}, "not both"),
])
def test_a_bad_budget_is_one_line(options, message):
    with pytest.raises(HarnessError, match=message) as err:
        budget_options(options)
    assert "\n" not in str(err.value) and err.value.code == 2


def test_bad_budget_flags_exit_2_before_running(capsys, tmp_path):
    for flags in (["--auto", "huge"], ["--max-metric-calls", "-3"]):
        code = cli.main(["run", "--strategy", "GEPA", "--task", "math", "--out", str(tmp_path), *flags])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error: --") and "\n" not in err
    assert not (tmp_path / "runs").exists()
    assert budget_options({"auto": "medium"}) == {"auto": "medium"}
    assert budget_options({"max_metric_calls": "40"}) == {"max_metric_calls": 40}


def _report(records: list[RunRecord]):
    first = records[0]
    return build_report(records, [r.run_id for r in records], profile=first.profile, lm=None,
                        priced_as=first.priced_as, machine=first.machine, software=first.software, git=first.git)


def _render(records: list[RunRecord], out):
    report = _report(records)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", report.model_dump_json(indent=1))
    write_outputs(report, out)
    return (out / "report.md").read_text(), json.loads((out / "claims.json").read_text())


def test_a_report_of_only_gepa_runs_renders_everything(runs, tmp_path, capsys):
    md, claims = _render(list(runs.values()), tmp_path / "only")
    assert "Plots that could not be drawn" not in md and "could not be judged" not in md
    for plot in ("resources_by_strategy.png", "cost_quality.png", "ram_timeline.png"):
        assert (tmp_path / "only" / "plots" / plot).stat().st_size > 1000, plot
    assert f"| GEPA | {NOT_IN_STUDY} | math |" in md and "Metric-call budgets" in md
    ids = {r.run_id for r in runs.values()}
    tier_verdicts = [v for v in claims["verdicts"] if v["section"] == "Strategy tiers"]
    assert tier_verdicts and all(not ids & set(v.get("run_ids") or []) for v in tier_verdicts)
    folder = str(tmp_path / "only")
    assert cli.main(["compare", folder, folder]) == 0 and "GEPA / multihop" in capsys.readouterr().out
    assert cli.main(["check", "--baseline", folder, "--current", folder]) == 0


def test_gepa_beside_a_study_strategy_is_shown_not_in_the_study(runs, tmp_path):
    study = [run_one(RunSpec(strategy=s, task="math", profile="quick"), tmp_path / "runs")
             for s in ("LabeledFewShot", "BootstrapFewShot")]
    md, claims = _render([*study, *runs.values()], tmp_path / "mixed")
    assert "Plots that could not be drawn" not in md
    assert "| LabeledFewShot | Minimal | math |" in md and f"| GEPA | {NOT_IN_STUDY} | math |" in md
    placement = [v for v in claims["verdicts"] if v["claim_id"].endswith((".LabeledFewShot", ".BootstrapFewShot"))]
    assert len(placement) == 2 and all(v["data"]["strategies_ranked"] == 2 for v in placement)  # GEPA not ranked
    assert not any(v["claim_id"].endswith(".GEPA") for v in claims["verdicts"])


def test_check_reruns_gepa_with_the_budget_it_ran_under(runs):
    from harness.check import rerun_spec

    rec = runs["math"].model_copy(update={"budget": runs["math"].budget.model_copy(
        update={"auto": None, "max_metric_calls_asked": 40, "asked": "max_metric_calls=40"})})
    assert rerun_spec(_report([rec]), rec, 1).options == {"max_metric_calls": 40}


def test_the_standard_profile_runs_mipro_and_gepa_at_each_auto_budget(tmp_path):
    """Budgets as the axis that sets cost: the standard bench runs MIPROv2 and GEPA at light (their own runs),
    medium and heavy (variants, each its own run id), unless the user set that strategy's budget."""
    from harness.bench import Bench, BenchConfig
    from harness.registry import plan, split_variant

    runs = plan("standard", ["COPRO", "MIPROv2", "GEPA"], ["math"])
    assert [s for s, _, _ in runs] == ["COPRO", "MIPROv2", "MIPROv2@auto=medium", "MIPROv2@auto=heavy", "GEPA",
                                       "GEPA@auto=medium", "GEPA@auto=heavy"]
    assert [s for s, _, _ in plan("quick", ["MIPROv2", "GEPA"], ["math"])] == ["MIPROv2", "GEPA"]
    mine = plan("standard", ["MIPROv2", "GEPA"], ["math"], options={"set": {"MIPROv2": {"auto": "heavy"}}, "auto": "light"})
    assert [s for s, _, _ in mine] == ["MIPROv2", "GEPA"]
    assert split_variant("GEPA@auto=heavy") == ("GEPA", {"auto": "heavy"}) and split_variant("COPRO") == ("COPRO", {})
    spec = Bench(BenchConfig(out=tmp_path, profile="standard", strategies=["MIPROv2"], tasks=["math"])).spec(
        "MIPROv2@auto=medium", "math", 0)
    assert spec.strategy == "MIPROv2" and spec.settings == {"auto": "medium"}
    assert spec.run_id == "MIPROv2@auto=medium__math__r0"
