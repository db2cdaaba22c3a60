"""The shipped tasks: each a short declaration of its data, program and metric.

Data: ``harness/tasks/data/<task>/{train,dev,test}.jsonl`` made by ``python -m harness.tasks.generate``
(fixed seeds; ``--check`` proves the committed files match). Each profile uses the first N rows of
each split, so quick is a prefix of standard.
"""

from __future__ import annotations

import json

from harness.tasks.base import DATA_DIR, Task
from harness.tasks.feedback import classify_feedback, math_feedback, multihop_feedback
from harness.tasks.oracles import ClassifyOracle, MathOracle, MultihopOracle, last_number, norm

QUICK = {"train": 32, "dev": 16, "test": 24}
STANDARD = {"train": 200, "dev": 100, "test": 100}


# --------------------------------------------------------------------------- math


def math_program():
    import dspy

    return dspy.ChainOfThought("question -> answer")


def math_metric(example, pred, trace=None) -> bool:
    return last_number(getattr(pred, "answer", "") or "") == example.answer


# --------------------------------------------------------------------------- classify


def classify_labels() -> list[dict]:
    return json.loads((DATA_DIR / "classify" / "labels.json").read_text())


def classify_program():
    from typing import Literal

    import dspy

    labels = tuple(x["label"] for x in classify_labels())
    signature = dspy.Signature(
        {"text": (str, dspy.InputField(desc="a customer support message")),
         "label": (Literal[labels], dspy.OutputField(desc="the intent of the message"))},  # type: ignore[valid-type]
        "Classify the customer support message into one intent label.",
    )
    return dspy.ChainOfThought(signature)


def classify_metric(example, pred, trace=None) -> bool:
    return str(getattr(pred, "label", "")).strip() == example.label


# --------------------------------------------------------------------------- multihop


def passages(query: str, k: int = 3) -> list[str]:
    from harness.tasks.search import Corpus

    return [f"{d['title']} | {d['text']}" for d in Corpus.load().search(str(query), k=k)]


class SearchTool:
    """The corpus search as a tool object (``run(query) -> str``) for dspy.predict.avatar.Tool."""

    def run(self, query: str) -> str:
        return "\n".join(passages(query))


def multihop_program():
    import dspy

    class MultiHop(dspy.Module):
        """Two searches over the shipped corpus, then an answer from what was found."""

        def __init__(self, hops: int = 2, k: int = 3):
            super().__init__()
            self.k = k
            self.generate_query = [dspy.ChainOfThought("question, context -> search_query") for _ in range(hops)]
            self.generate_answer = dspy.ChainOfThought("question, context -> answer")

        def forward(self, question):
            context: list[str] = []
            for hop in self.generate_query:
                query = hop(question=question, context=context).search_query
                context += [p for p in passages(query, self.k) if p not in context]
            return self.generate_answer(question=question, context=context)

    return MultiHop()


def multihop_metric(example, pred, trace=None) -> bool:
    return norm(getattr(pred, "answer", "") or "") == norm(example.answer)


TASKS = [
    Task(name="math", summary="grade-school math word problems, chain of thought (GSM8K-like lengths)",
         program_doc="dspy.ChainOfThought('question -> answer')",
         metric_name="exact match of the final number", input_keys=("question",), answer_key="answer",
         make_program=math_program, metric=math_metric, oracle=MathOracle, feedback=math_feedback,
         sizes={"quick": QUICK, "standard": STANDARD}),
    Task(name="classify", summary="support-ticket intent classification, 10 labels",
         program_doc="dspy.ChainOfThought('text -> label: Literal[10 labels]')",
         metric_name="exact match of the label", input_keys=("text",), answer_key="label",
         make_program=classify_program, metric=classify_metric, oracle=ClassifyOracle, feedback=classify_feedback,
         sizes={"quick": QUICK, "standard": STANDARD},
         extra_files=("classify/labels.json",)),
    Task(name="multihop", summary="two-hop questions over a shipped 300-document corpus, with a search tool",
         program_doc="MultiHop: 2 x ChainOfThought('question, context -> search_query') + BM25 search (k=3), "
                     "then ChainOfThought('question, context -> answer'); AvatarOptimizer uses an Avatar agent "
                     "with the same search as its tool",
         metric_name="exact match of the normalised answer", input_keys=("question",), answer_key="answer",
         make_program=multihop_program, metric=multihop_metric, oracle=MultihopOracle,
         feedback=multihop_feedback, sizes={"quick": QUICK, "standard": STANDARD},
         extra_files=("multihop/corpus.jsonl",)),
]
