"""The offline LM: DSPy's own client, every field answered, deterministic, counted where served."""

from __future__ import annotations

import subprocess
import sys
from typing import Literal

import dspy
import pytest
from pydantic import BaseModel

from harness.lm.brain import assess
from harness.lm.offline import make_offline_lm
from harness.lm.prompt import parse
from harness.lm.tokens import encoding_for
from harness.lm.usage import UsageCounter
from harness.tasks.registry import TASKS

MATH = next(t for t in TASKS if t.name == "math")


@pytest.fixture
def counter():
    return UsageCounter()


@pytest.fixture
def lm(counter):
    lm = make_offline_lm(MATH.oracle(), counter=counter)
    with dspy.context(lm=lm):
        yield lm


class Action(BaseModel):
    tool_name: str
    tool_input_query: str


class Everything(dspy.Signature):
    """Fill every field."""

    question: str = dspy.InputField()
    module_names: list[str] = dspy.InputField()
    label: Literal["alpha", "beta_gamma"] = dspy.OutputField()
    entries: list[str] = dspy.OutputField()
    mapping: dict[str, str] = dspy.OutputField()
    score: float = dspy.OutputField()
    count: int = dspy.OutputField()
    flag: bool = dspy.OutputField()
    action_1: Action = dspy.OutputField()
    module_advice: dict[str, str] = dspy.OutputField()
    proposed_instruction: str = dspy.OutputField()


def test_answers_every_field_of_any_signature(lm):
    pred = dspy.Predict(Everything)(question="anything", module_names=["generate_query", "answer"])
    assert pred.label in ("alpha", "beta_gamma")
    assert isinstance(pred.entries, list) and pred.entries
    assert isinstance(pred.mapping, dict) and isinstance(pred.score, float) and isinstance(pred.count, int)
    assert isinstance(pred.flag, bool) and isinstance(pred.action_1, Action)
    assert set(pred.module_advice) == {"generate_query", "answer"}  # keyed by the names it was given
    assert len(pred.proposed_instruction.split()) >= 8  # a realistic length


def test_json_adapter_gets_json(lm, counter):
    with dspy.context(adapter=dspy.JSONAdapter()):
        pred = dspy.Predict(Everything)(question="q", module_names=["m"])
    assert isinstance(pred.action_1, Action) and counter.totals().calls == 1  # parsed first time, no retry


def test_task_answers_are_sometimes_right_and_better_with_demos(lm):
    program = MATH.make_program()
    test = MATH.examples("test", "standard")
    before = dspy.Evaluate(devset=test, metric=MATH.metric, display_progress=False)(program).score
    demos = dspy.LabeledFewShot(k=4).compile(program, trainset=MATH.examples("train", "quick"))
    after = dspy.Evaluate(devset=test, metric=MATH.metric, display_progress=False)(demos).score
    assert 10 < before < 90
    assert after > before + 5


def test_skill_rises_with_hints_and_correct_demos_and_falls_with_wrong_ones():
    oracle = MATH.oracle()
    row = MATH.rows("test")[0]
    demo = MATH.rows("train")[0]
    system = ("Your input fields are:\n1. `question` (str):\nYour output fields are:\n1. `reasoning` (str):\n"
              "2. `answer` (str):\nAll interactions will be structured in the following way\n"
              "In adhering to this structure, your objective is: {}")
    ask = ("user", f"[[ ## question ## ]]\n{row['question']}")
    shown = ("user", f"[[ ## question ## ]]\n{demo['question']}")

    def p(instruction, demo_answer=None):
        msgs = [shown, ("assistant", f"[[ ## answer ## ]]\n{demo_answer}"), ask] if demo_answer else [ask]
        return assess(oracle, parse(system.format(instruction), msgs), row, "t0", "fp").p

    plain = p("Given the fields `question`, produce the fields `answer`.")
    assert p("Work through the problem step by step and double-check the arithmetic.") > plain
    assert p("Answer.", demo["answer"]) > p("Answer.")
    assert p("Answer.", str(int(demo["answer"]) + 7)) < p("Answer.")


def test_same_request_same_reply_whatever_the_hash_seed():
    code = ("from harness.lm.brain import Brain; from harness.tasks.registry import TASKS;"
            "b = Brain(TASKS[0].oracle()); import sys;"
            "sys.stdout.write(b.reply('Your output fields are:\\n1. `proposed_instruction` (str):\\nAll interactions', "
            "[('user', '[[ ## basic_instruction ## ]]\\nSolve it.')], 's3'))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin"}).stdout for seed in ("1", "2", "3")}
    assert len(outs) == 1 and "proposed_instruction" in outs.pop()


def test_samples_differ_by_rollout_at_temperature_above_zero(lm):
    program = MATH.make_program()
    rows = MATH.examples("test", "standard")[:20]
    answers = []
    for rid in (1, 2):
        with dspy.context(lm=lm.copy(rollout_id=rid, temperature=1.0)):
            answers.append([program(**ex.inputs()).answer for ex in rows])
    assert answers[0] != answers[1]
    with dspy.context(lm=lm.copy(rollout_id=1, temperature=1.0)):
        assert [program(**ex.inputs()).answer for ex in rows] == answers[0]  # and repeat exactly


def test_tokens_are_the_reference_models_real_tokens(lm, counter):
    pred = dspy.Predict("question -> answer")(question="What is 2 + 3?")
    entry = lm.history[-1]
    enc = encoding_for("openai/gpt-4o-mini")
    expected_in = sum(3 + 1 + len(enc.encode(m["content"])) for m in entry["messages"]) + 3
    t = counter.totals()
    assert (t.calls, t.input_tokens) == (1, expected_in)
    assert t.output_tokens == len(enc.encode(entry["outputs"][0] if isinstance(entry["outputs"][0], str)
                                             else entry["outputs"][0]["text"])) or t.output_tokens > 0
    assert pred.answer


def test_calls_in_threads_are_all_counted(lm, counter):
    test = MATH.examples("test", "standard")[:40]
    with dspy.track_usage() as tracker:
        dspy.Evaluate(devset=test, metric=MATH.metric, num_threads=4, display_progress=False)(MATH.make_program())
    assert counter.totals().calls == 40
    # DSPy's own tracker deep-copies itself per thread and loses these (the trap this design avoids)
    lost = tracker.get_total_tokens().get("offline/simulated", {}).get("prompt_tokens", 0)
    assert lost < counter.totals().input_tokens


def test_counts_past_dspys_10000_entry_history_cap(lm, counter):
    n = 10_050
    for i in range(n):
        lm(messages=[{"role": "user", "content": f"ping {i}"}])
    assert counter.totals().calls == n
    assert len(lm.history) == 10_000  # DSPy's history stops at its cap; the counter does not


def test_price_is_dspys_bundled_price(counter):
    make_offline_lm(counter=counter, price_as="openai/gpt-4o")
    counter.add(calls=1, input_tokens=1_000_000, output_tokens=1_000_000)
    assert counter.usage().api_cost_usd == pytest.approx(2.5 + 10.0)


def test_segmented_token_counts_are_exact():
    """Counts are cached per line-start segment; the sum must equal tiktoken on the whole text."""
    import random

    from harness.lm.tokens import SEGMENT, TokenCounter

    corpus = [r["rationale"] for r in MATH.rows("train")[:50]] + [r["question"] for r in MATH.rows("test")[:50]]
    rng = random.Random(0)
    for model in ("openai/gpt-4o-mini", "openai/gpt-4"):
        counter = TokenCounter(model)
        for _ in range(300):
            text = "\n".join(rng.choice(corpus) for _ in range(rng.randint(1, 8)))
            text = text.replace(". ", rng.choice([".\n", ". ", "\n\n", "/\n", " \n", ".\n/"]), rng.randint(0, 3))
            assert len(SEGMENT.split(text)) >= 1
            assert counter.text(text) == len(counter.encoding.encode_ordinary(text)), text


def test_reads_the_field_lines_of_dspy_2_6_22_which_have_no_colon_without_a_description():
    """Up to DSPy 2.6.22 (and 2.6.23) a field with no description is listed as "1. `answer` (str)"; the offline LM
    answered those prompts with no field at all, so every answer failed to parse there (found by the matrix)."""
    old = ("Your input fields are:\n1. `question` (str)\nYour output fields are:\n1. `reasoning` (str)\n"
           "2. `answer` (str)\nAll interactions will be structured in the following way, with the appropriate values "
           "filled in.\n\n[[ ## question ## ]]\n{question}\n\n[[ ## reasoning ## ]]\n{reasoning}\n\n[[ ## answer ## ]]\n"
           "{answer}\n\n[[ ## completed ## ]]\nIn adhering to this structure, your objective is: \n        Given the "
           "fields `question`, produce the fields `answer`.")
    user = ("[[ ## question ## ]]\nWhat is 2+3?\n\nRespond with the corresponding output fields, starting with the field "
            "`[[ ## reasoning ## ]]`, then `[[ ## answer ## ]]`, and then ending with the marker for "
            "`[[ ## completed ## ]]`.")
    prompt = parse(old, [("user", user)])
    assert [f.name for f in prompt.outputs] == ["reasoning", "answer"]
    new = old.replace("(str)\n", "(str): \n")  # (2.6.27 on: the colon always)
    assert [f.name for f in parse(new, [("user", user)]).outputs] == ["reasoning", "answer"]
