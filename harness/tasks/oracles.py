"""What the offline LM knows about each shipped task (see harness.lm.brain for how it is used).

An oracle finds the dataset row behind a prompt's inputs, says how hard the row is, judges demos,
and writes the task's answer fields: right or wrong as the prompt's :class:`Skill` draws it,
wrong in the way a model is wrong (an arithmetic slip, a confusable label, the bridge entity).
"""

from __future__ import annotations

import json
import re
from functools import cached_property

from harness.lm.brain import Rand, Skill
from harness.lm.prompt import Prompt
from harness.tasks.base import SPLITS, read_jsonl, DATA_DIR

_NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


_NON_WORD = re.compile(r"[^a-z0-9]+")


def norm(text: str) -> str:
    """Lower case, words of letters and digits separated by single spaces."""
    return " ".join(_NON_WORD.sub(" ", str(text).lower()).split())


def mentions(lowered_text: str, name: str) -> bool:
    """Does lower-cased text name `name` as whole words (not inside a longer word)?"""
    needle, start = name.lower(), 0
    while (i := lowered_text.find(needle, start)) >= 0:
        end = i + len(needle)
        if (i == 0 or not lowered_text[i - 1].isalnum()) and (end == len(lowered_text)
                                                               or not lowered_text[end].isalnum()):
            return True
        start = i + 1
    return False


def last_number(text: str) -> str | None:
    nums = _NUM.findall(str(text))
    return nums[-1].replace(",", "").rstrip(".") if nums else None


class _Base:
    task = ""
    key_field = "question"

    @cached_property
    def index(self) -> dict[str, dict]:
        rows = {}
        for split in SPLITS:
            for row in read_jsonl(DATA_DIR / self.task / f"{split}.jsonl"):
                rows[norm(row[self.key_field])] = row
        return rows

    def find(self, inputs: dict[str, str]) -> dict | None:
        value = inputs.get(self.key_field)
        if not value:
            return None
        hit = self._found.get(value)
        if hit is None:
            hit = self._found[value] = (self.index.get(norm(value)),)
        return hit[0]

    @cached_property
    def _found(self) -> dict[str, tuple[dict | None]]:
        return {}


class MathOracle(_Base):
    task = "math"
    topic = "solving grade-school math word problems"
    fields = frozenset({"reasoning", "answer"})
    hints = ("step by step", "units", "double-check", "intermediate")
    hint_phrases = (
        "Work through the problem step by step, writing out each calculation.",
        "Keep track of the units and quantities at every step.",
        "Double-check the arithmetic before giving the final number.",
        "State each intermediate result before combining them into the answer.",
    )

    def base_p(self, row: dict) -> float:
        return min(max(0.62 - 0.05 * int(row.get("steps", 3)), 0.2), 0.6)

    def demo_correct(self, row: dict, outputs: dict[str, str]) -> bool:
        return last_number(outputs.get("answer", "")) == row["answer"]

    def related(self, row: dict, other: dict) -> bool:
        return row.get("skill") == other.get("skill")

    def wrong_number(self, row: dict, rand: Rand) -> str:
        gold = int(row["answer"])
        delta = rand.choice((1, 2, 5, 10, -1, -2, -5)) if gold > 10 else rand.choice((1, 2, 3))
        return str(max(gold + delta, 0) if gold + delta != gold else gold + 1)

    def answer(self, prompt: Prompt, row: dict, skill: Skill, rand: Rand) -> dict[str, str]:
        if skill.right("answer"):
            return {"reasoning": row["rationale"], "answer": row["answer"]}
        wrong = self.wrong_number(row, rand)
        lines = row["rationale"].splitlines()
        steps = lines[:-1][: max(1, len(lines) - 1 - rand.between(0, 1))]
        return {"reasoning": "\n".join([*steps, f"The answer is {wrong}."]), "answer": wrong}


class ClassifyOracle(_Base):
    task = "classify"
    key_field = "text"
    topic = "classifying customer support messages by intent"
    fields = frozenset({"reasoning", "label"})
    hints = ("exactly one", "underlying", "cue word", "requested action")
    hint_phrases = (
        "Choose exactly one label from the allowed list.",
        "Identify the customer's underlying need rather than the topic they mention.",
        "Look for the cue word that reveals what the customer needs.",
        "When two labels seem to fit, prefer the one matching the requested action.",
    )

    @cached_property
    def labels(self) -> list[str]:
        return [x["label"] for x in json.loads((DATA_DIR / "classify" / "labels.json").read_text())]

    def base_p(self, row: dict) -> float:
        return 0.68 if row.get("difficulty") == "easy" else 0.3

    def demo_correct(self, row: dict, outputs: dict[str, str]) -> bool:
        return outputs.get("label", "").strip() == row["label"]

    def related(self, row: dict, other: dict) -> bool:
        return row["label"] == other["label"]

    def answer(self, prompt: Prompt, row: dict, skill: Skill, rand: Rand) -> dict[str, str]:
        options = next((f.options for f in prompt.outputs if f.name == "label" and f.options), None) or self.labels
        label = row["label"]
        if not skill.right("label"):
            others = [o for o in options if o != label]
            label = rand.choice(others) if others else label
        words = " ".join(row["text"].split()[: rand.between(6, 12)])
        reasoning = (f"The customer writes: \"{words} ...\". The message is mainly about "
                     f"{label.replace('_', ' ')}, so the most fitting intent label is {label}.")
        return {"reasoning": reasoning, "label": label}


class MultihopOracle(_Base):
    task = "multihop"
    topic = "answering two-hop questions over a document collection"
    fields = frozenset({"reasoning", "search_query", "answer"} | {f"action_{i}" for i in range(1, 9)})
    hints = ("bridge", "second search", "exact name", "retrieved")
    hint_phrases = (
        "First find the entity the question names, then search again for the bridge entity it mentions.",
        "Run a second search for the entity found in the first document before answering.",
        "Answer with the exact name as it is written in the documents.",
        "Base the answer only on the retrieved passages; do not guess.",
    )

    _seen = staticmethod(mentions)

    def _vague(self, row: dict, rand: Rand) -> str:
        words = [w for w in norm(row["question"]).split() if len(w) > 3]
        return " ".join(words[-rand.between(2, 3):]) or row["question"]

    def _context(self, prompt: Prompt) -> tuple[str, str]:
        """The retrieved text (context field, or an agent's tool results), as is and lower-cased."""
        parts = [prompt.inputs.get("context", "")]
        parts += [v for k, v in prompt.inputs.items() if k.startswith("result_")]
        raw = "\n".join(parts)
        return raw, raw.lower()

    def base_p(self, row: dict) -> float:
        return 0.62

    def demo_correct(self, row: dict, outputs: dict[str, str]) -> bool:
        return norm(outputs.get("answer", "")) == norm(row["answer"])

    def related(self, row: dict, other: dict) -> bool:
        return row.get("template") == other.get("template")

    def _query(self, row: dict, lowered: str, skill: Skill, rand: Rand, what: str) -> str:
        hop1, hop2 = row["hops"]
        target = hop2 if self._seen(lowered, hop1) and self._seen(lowered, row["bridge"]) else hop1
        return target if skill.right(what) else self._vague(row, rand)

    def _final(self, row: dict, context: tuple[str, str], skill: Skill, rand: Rand) -> tuple[str, str]:
        hop1, hop2 = row["hops"]
        raw, lowered = context
        if self._seen(lowered, hop2) and self._seen(lowered, row["answer"]) and skill.right("answer"):
            return (f"The question asks about {hop1}. Its document names {row['bridge']}, and the document on "
                    f"{hop2} states the answer.", row["answer"])
        guess = row["bridge"] if self._seen(lowered, row["bridge"]) else hop1
        if rand.u() < 0.5:
            caps = re.findall(r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)*", raw)
            guess = rand.choice(caps) if caps else guess
        return (f"The passages mention {hop1}, but the needed fact is not clearly stated; the best guess is "
                f"{guess}.", guess)

    def answer(self, prompt: Prompt, row: dict, skill: Skill, rand: Rand) -> dict[str, str]:
        names = [f.name for f in prompt.outputs]
        context = self._context(prompt)
        out: dict[str, str] = {}
        action = next((n for n in names if n.startswith("action_")), None)
        if action:
            step = int(action.split("_")[1])
            try:
                tools = [t for t in json.loads(prompt.inputs.get("tools", "[]")) if t != "Finish"]
            except json.JSONDecodeError:
                tools = []
            lowered = context[1]
            hop2_seen = self._seen(lowered, row["hops"][1]) and self._seen(lowered, row["answer"])
            if hop2_seen or step > 3 or not tools:
                out[action] = json.dumps({"tool_name": "Finish", "tool_input_query": "done"})
            else:
                query = self._query(row, lowered, skill, rand, f"query{step}")
                out[action] = json.dumps({"tool_name": tools[0], "tool_input_query": query})
        if "search_query" in names:
            hop = "2" if self._seen(context[1], row["hops"][0]) else "1"
            out["search_query"] = self._query(row, context[1], skill, rand, f"query{hop}")
            out["reasoning"] = (f"To answer, I need information about "
                                f"{'the entity named in the first document' if hop == '2' else 'the entity in the question'}.")
        if "answer" in names:
            out["reasoning"], out["answer"] = self._final(row, context, skill, rand)
        return out

