"""Feedback text for each shipped task: what its own metric checked, in words (for GEPA's feedback metric).

Each function takes ``(gold, pred, trace)``, the arguments of the task's metric, and says what the check found:
the expected answer and the one given, how they differ, and for multihop which hop failed (read from the
program's trace: the context its answer step saw, against the shipped row's two hops and bridge entity).
:func:`feedback_text` falls back to "expected X, got Y" for a task that declares no feedback of its own.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from harness.tasks.base import DATA_DIR, SPLITS, read_jsonl
from harness.tasks.oracles import last_number, mentions, norm


def _field(pred: Any, name: str) -> str:
    return str(getattr(pred, name, "") or "")


def math_feedback(gold, pred, trace=None) -> str:
    got_text = _field(pred, "answer")
    got = last_number(got_text)
    if got == gold.answer:
        return f"Correct: the final number is {gold.answer}, the expected answer."
    if got is None:
        return (f"Wrong: the expected answer is {gold.answer}, but the answer {got_text[:80]!r} holds no number: "
                "end with the final number alone.")
    try:
        off = f" (off by {float(got) - float(gold.answer):+g})"
    except ValueError:
        off = ""
    return f"Wrong: the expected answer is {gold.answer}, but the final number given is {got}{off}."


@lru_cache(maxsize=1)
def _label_descriptions() -> dict[str, str]:
    rows = json.loads((DATA_DIR / "classify" / "labels.json").read_text())
    return {r["label"]: r.get("description", "") for r in rows}


def classify_feedback(gold, pred, trace=None) -> str:
    got, want = _field(pred, "label").strip(), gold.label
    meaning = _label_descriptions().get(want, "")
    if got == want:
        return f"Correct: the label is {want}."
    given = f"the answer was {got}" if got else "no label was given"
    return f"Wrong: the expected label is {want} ({meaning}), but {given}."


@lru_cache(maxsize=1)
def _multihop_rows() -> dict[str, dict]:
    return {norm(r["question"]): r for split in SPLITS for r in read_jsonl(DATA_DIR / "multihop" / f"{split}.jsonl")}


def _answer_context(trace) -> str | None:
    """The context the program's answer step saw (the last traced call whose outputs hold an answer)."""
    for _, inputs, outputs in reversed(list(trace or [])):
        if "answer" in (getattr(outputs, "keys", lambda: [])() or []) and "context" in inputs:
            ctx = inputs["context"]
            return "\n".join(map(str, ctx)) if isinstance(ctx, (list, tuple)) else str(ctx)
    return None


def multihop_feedback(gold, pred, trace=None) -> str:
    got, want = _field(pred, "answer"), gold.answer
    row = _multihop_rows().get(norm(gold.question))
    head = (f"Correct: the answer is {want}." if norm(got) == norm(want)
            else f"Wrong: the expected answer is {want!r}, but the answer given is {got[:80]!r}.")
    context = _answer_context(trace)
    if row is None or context is None:
        return head
    hop1, bridge = row["hops"][0], row["bridge"]
    text = context.lower()
    if not mentions(text, bridge):
        return head + (f" The first search did not retrieve the document on {hop1}, which names the bridge entity: "
                       f"search first for {hop1} itself.")
    if not mentions(text, want):
        return head + (f" The first search found the document on {hop1}, which names {bridge}, but the second "
                       f"search did not retrieve the document on {bridge}: search for that exact name.")
    return head + (f" Both documents were retrieved ({hop1}, then {bridge}); the answer is stated in the "
                   f"document on {bridge}.")


def feedback_text(task, gold, pred, trace=None) -> str:
    """The task's own feedback, or "expected X, got Y" on the task's answer field."""
    if task.feedback is not None:
        return task.feedback(gold, pred, trace)
    key = task.answer_key
    ok = bool(task.metric(gold, pred, trace))
    return f"{'Correct' if ok else 'Wrong'}: expected {key} {gold.get(key)!r}, got {_field(pred, key)[:80]!r}."
