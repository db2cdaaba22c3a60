"""The offline LM's answers: deterministic, field by field, better with better prompts.

What it is: a rule-based stand-in for a hosted chat model. It reads the prompt DSPy sends
(fields, types, instruction, demos, inputs) and writes every output field of every signature,
the optimizers' own included, at lengths like a real model's. Task answers come from a
per-task :class:`Oracle` that knows the shipped data: an answer is right with a probability
that rises with useful instructions (task hints in the instruction text) and with correct,
relevant demos, and falls with wrong demos. So an optimizer that finds better instructions or
demos raises the score for that reason, and one that does not, does not.

What it is not: a model of quality. Its scores show that an optimizer did its work, not how
good the optimizer is on a real model; its latency is not a hosted model's.

Determinism: every choice is a hash (blake2b) of the request's content and a salt. At
temperature 0 the salt is fixed; above 0 it is the call's ``rollout_id`` when DSPy gives one,
else the number of times the same request was seen (so n>1 samples differ).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Protocol

from harness.lm.memo import Memo
from harness.lm.prompt import OutField, Prefix, Prompt, parse_prefix, render, with_last_turn


def unit(*parts: object) -> float:
    """A uniform number in [0, 1) from the parts, the same on every machine."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return struct.unpack("<Q", digest)[0] / 2**64


class Rand:
    """Deterministic choices keyed by a string; each draw gets its own sub-key."""

    def __init__(self, key: str) -> None:
        self.key, self.n = key, 0

    def u(self) -> float:
        self.n += 1
        return unit(self.key, self.n)

    def choice(self, seq):
        return seq[int(self.u() * len(seq))]

    def between(self, lo: int, hi: int) -> int:
        return lo + int(self.u() * (hi - lo + 1))


# --------------------------------------------------------------------------- the task side


@dataclass
class Skill:
    """How well the prompt sets the model up for one question, and the resulting draw."""

    p: float  # probability of a right answer under this prompt
    hints: int  # task hints found in the instruction
    good_demos: int
    bad_demos: int
    relevant_demos: int
    key: str  # identifies the question (for per-field draws)
    salt: str
    fingerprint: str  # identifies the prompt (instruction + demos)

    def right(self, what: str = "") -> bool:
        """Draw whether this field comes out right. Half the questions draw independently of the
        prompt, half depend on it, so different prompts err on partly different questions."""
        if unit(self.key, "mix", what) < 0.5:
            u = unit(self.key, self.salt, what)
        else:
            u = unit(self.key, self.salt, what, self.fingerprint)
        return u < self.p


class Oracle(Protocol):
    """What the offline LM knows about one task."""

    fields: frozenset[str]  # output fields it answers (e.g. {"answer", "reasoning"})
    hints: tuple[str, ...]  # lowercase keywords that help when present in an instruction
    hint_phrases: tuple[str, ...]  # sentences a proposer may write, each holding one hint keyword
    topic: str  # a few words naming the task, for generic text

    def find(self, inputs: dict[str, str]) -> dict | None: ...
    def base_p(self, row: dict) -> float: ...
    def demo_correct(self, row: dict, outputs: dict[str, str]) -> bool: ...
    def related(self, row: dict, other: dict) -> bool: ...
    def answer(self, prompt: Prompt, row: dict, skill: Skill, rand: Rand) -> dict[str, str]: ...


DEMO_GAIN, BAD_DEMO_LOSS, RELEVANT_GAIN, HINT_GAIN = 0.06, 0.08, 0.06, 0.08


@lru_cache(maxsize=4096)
def hint_count(hints: tuple[str, ...], instruction: str) -> int:
    """How many of the task's hint keywords an instruction holds."""
    text = instruction.lower()
    return sum(1 for h in hints if h in text)


def judge_demos(oracle: Oracle, prompt: Prompt) -> list[tuple[dict, bool]]:
    """(dataset row, is its answer right) for each demo the oracle recognises."""
    judged = []
    for demo_in, demo_out in prompt.demos:
        other = oracle.find(demo_in)
        if other is not None and demo_out:
            judged.append((other, oracle.demo_correct(other, demo_out)))
    return judged


def assess(oracle: Oracle, prompt: Prompt, row: dict, salt: str, fingerprint: str,
           judged: list[tuple[dict, bool]] | None = None) -> Skill:
    judged = judge_demos(oracle, prompt) if judged is None else judged
    good = sum(1 for _, ok in judged if ok)
    bad = len(judged) - good
    relevant = sum(1 for other, ok in judged if ok and oracle.related(row, other))
    hints = hint_count(oracle.hints, prompt.instruction)
    p = (oracle.base_p(row) + DEMO_GAIN * min(good, 4) - BAD_DEMO_LOSS * min(bad, 3)
         + RELEVANT_GAIN * min(relevant, 2) + HINT_GAIN * min(hints, 3))
    return Skill(p=min(max(p, 0.02), 0.97), hints=hints, good_demos=good, bad_demos=bad, relevant_demos=relevant,
                 key=str(row.get("id")), salt=salt, fingerprint=fingerprint)


# --------------------------------------------------------------------------- generic text

FLUFF = (
    "Be concise and avoid unnecessary detail.",
    "Write in a clear, professional tone.",
    "Keep the output well formatted.",
    "Respond as a careful and helpful assistant would.",
    "Make sure every requested field is filled in.",
    "Stay focused on the task described by the input fields.",
)
OPENERS = (
    "You are an expert assistant for {topic}.",
    "Given the fields {inputs}, produce the fields {outputs}.",
    "Your task is {topic}.",
    "Read the {inputs} carefully and produce the {outputs}.",
)
OBSERVATIONS = (
    "The examples are about {topic}.",
    "Each example provides {inputs} and expects {outputs}.",
    "Inputs vary in length from a single sentence to a short paragraph.",
    "Most examples require combining several pieces of information before answering.",
    "The expected outputs are short and precise rather than open-ended.",
    "The data appears to be synthetic but internally consistent.",
    "Several examples share the same structure with different names and values.",
)
RULES = (
    "If the input is ambiguous, prefer the interpretation that uses every stated fact.",
    "Never leave an output field empty.",
    "Give the final answer in the shortest form that is still complete.",
    "Do not repeat the input in the output.",
    "Check the output against the input before finishing.",
)


# GEPA's reflection (harness.lm.brain.Generic.reflect)
REFLECT_RATE, MAX_SENTENCES = 0.6, 12
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z][a-z'-]{3,}")
_NEGATIVE = ("wrong", "incorrect", "expected", "failed", "did not", "score of 0")
_RAW_REFLECTION = "Provide the new instructions within ``` blocks"  # gepa's own InstructionProposalSignature prompt


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def feedback_notes(text: str) -> list[str]:
    """The feedback of each example GEPA shows its reflection LM: a JSON list of {"Inputs", "Generated Outputs",
    "Feedback"} (DSPy's ProposeInstruction through JSONAdapter), or gepa's own markdown ("## Feedback" sections)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        data = None
    if isinstance(data, list):
        return [str(d["Feedback"]) for d in data if isinstance(d, dict) and d.get("Feedback")]
    return [m.strip() for m in re.findall(r"## Feedback\n(.*?)(?=\n# Example |\Z)", text, re.S)]


def is_failure(note: str) -> bool:
    low = note.lower()
    return not low.startswith("correct") and any(w in low for w in _NEGATIVE)


def raw_reflection(generic: "Generic", text: str, rand: Rand) -> str:
    """gepa's raw reflection prompt (the current instruction in the first ``` block, the examples in the second,
    "Provide the new instructions within ``` blocks"): the new instruction in a ``` block."""
    blocks = re.findall(r"```\n(.*?)\n```", text, re.S)
    current, side = (blocks + ["", ""])[:2]
    return f"```\n{generic.reflect(current, feedback_notes(side), rand)}\n```"


class Generic:
    """Text for fields no oracle owns: the optimizers' own signatures and unknown ones."""

    def __init__(self, oracle: Oracle | None) -> None:
        self.oracle = oracle
        self.topic = oracle.topic if oracle else "the task"

    def _names(self, prompt: Prompt) -> dict[str, str]:
        inputs = ", ".join(f"`{f.name}`" for f in prompt.inputs_spec) or "inputs"
        outputs = ", ".join(f"`{f.name}`" for f in prompt.outputs) or "outputs"
        return {"topic": self.topic, "inputs": inputs, "outputs": outputs}

    def _grounded(self, prompt: Prompt) -> bool:
        """Did the proposer see task data (examples, demos, a dataset summary, scored attempts)?"""
        keys = {"examples", "task_demos", "examples_text", "dataset_description", "attempted_instructions",
                "pos_input_with_metrics", "worse_program_trajectory", "feedback"}
        return any(prompt.inputs.get(k) for k in keys)

    def sentences(self, prompt: Prompt, rand: Rand, n: int, bank: tuple[str, ...], hint_rate: float) -> list[str]:
        names = self._names(prompt)
        hints = self.oracle.hint_phrases if self.oracle else ()
        out: list[str] = []
        for _ in range(n):
            if hints and rand.u() < hint_rate:
                s = rand.choice(hints)
            else:
                s = rand.choice(bank).format(**names)
            if s not in out:
                out.append(s)
        return out

    def instruction(self, prompt: Prompt, rand: Rand) -> str:
        rate = 0.45 if self._grounded(prompt) else 0.25
        opener = rand.choice(OPENERS).format(**self._names(prompt))
        return " ".join([opener, *self.sentences(prompt, rand, rand.between(2, 4), FLUFF, rate)])

    def value(self, f: OutField, prompt: Prompt, rand: Rand) -> str:
        name, grounded = f.name, self._grounded(prompt)
        rate = 0.45 if grounded else 0.25
        if name == "new_instruction" and "examples_with_feedback" in prompt.inputs:  # GEPA's ProposeInstruction
            return self.reflect(prompt.inputs.get("current_instruction", ""),
                                feedback_notes(prompt.inputs["examples_with_feedback"]), rand)
        if name in ("proposed_instruction", "new_instruction"):
            return self.instruction(prompt, rand)
        if name == "proposed_prefix_for_output_field":
            return rand.choice(("Answer:", "Final Answer:", "Result:", "Output:"))
        if name in ("observations", "feedback", "discussion"):
            return " ".join(self.sentences(prompt, rand, rand.between(4, 7), OBSERVATIONS + RULES, rate))
        if name in ("summary", "program_description", "module_description"):
            return " ".join(self.sentences(prompt, rand, rand.between(2, 3), OBSERVATIONS, rate / 2))
        if name == "natural_language_rules":
            rules = self.sentences(prompt, rand, rand.between(4, 7), RULES, rate + 0.1)
            return "\n".join(f"{i}. {r}" for i, r in enumerate(rules, 1))
        if name == "module_advice":
            try:
                modules = json.loads(prompt.inputs.get("module_names", "[]"))
            except json.JSONDecodeError:
                modules = []
            advice = {str(m): " ".join(self.sentences(prompt, rand, rand.between(2, 3), RULES, rate))
                      for m in modules}
            return json.dumps(advice)
        if name == "reasoning":
            return " ".join(self.sentences(prompt, rand, rand.between(2, 4), OBSERVATIONS, 0.0))
        return self.by_type(f, prompt, rand)

    def reflect(self, current: str, notes: list[str], rand: Rand) -> str:
        """GEPA's proposal: the current instruction kept, one lesson added per failed example shown (up to 3): a task
        hint the feedback's words point at, with odds REFLECT_RATE when the feedback has words of its own (half that
        for GEPA's bare "This trajectory got a score of 0"), else a general rule; at most MAX_SENTENCES sentences."""
        sentences = [x for x in _SENTENCE_END.split(current.strip()) if x]
        failures = [n for n in notes if is_failure(n)]
        worded = any(not n.lower().startswith("this trajectory got a score") for n in failures)
        for note in failures[:3] or [""]:
            lesson = self.lesson(note, sentences, rand, (REFLECT_RATE if worded else REFLECT_RATE / 2) if note else 0.0)
            if lesson not in sentences:
                sentences.append(lesson)
        if len(sentences) > MAX_SENTENCES:
            sentences = sentences[:1] + sentences[1 - MAX_SENTENCES:]
        return " ".join(sentences)

    def lesson(self, note: str, have: list[str], rand: Rand, rate: float) -> str:
        """A task hint not yet in the instruction, the one sharing most words with `note` (with odds `rate`), else a
        general rule (a fluff sentence when there is no failure to learn from)."""
        hints = [h for h in (self.oracle.hint_phrases if self.oracle else ()) if h not in have]
        if hints and rand.u() < rate:
            words = _words(note)
            return max(hints, key=lambda h: (len(words & _words(h)), rand.u()))
        return rand.choice(RULES if note else FLUFF)

    def by_type(self, f: OutField, prompt: Prompt, rand: Rand) -> str:
        t = f.type
        if f.options:
            return rand.choice(f.options)
        if t == "bool":
            return rand.choice(("true", "false"))
        if t == "int":
            return str(rand.between(0, 10))
        if t == "float":
            return f"{rand.u():.2f}"
        if t.startswith("list"):
            return json.dumps(self.sentences(prompt, rand, rand.between(2, 4), OBSERVATIONS, 0.0))
        if t.startswith("dict"):
            return json.dumps({"note": rand.choice(OBSERVATIONS).format(**self._names(prompt))})
        if f.schema and f.schema.get("properties"):
            return json.dumps({k: rand.choice(FLUFF) for k in f.schema["properties"]})
        return " ".join(self.sentences(prompt, rand, rand.between(1, 3), OBSERVATIONS, 0.0))


# --------------------------------------------------------------------------- the brain


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def prefix_key(system: str, messages: list[tuple[str, str]]) -> str:
    """Identifies a prompt without its last turn (system prompt, instruction and demos)."""
    return _digest(system + "\x1e".join(text for _, text in messages[:-1]))


@dataclass(frozen=True)
class Calibration:
    """What a named real model does that the offline LM does not, measured by `harness fidelity` from a bench of
    that model (calibration.json): the offline LM then answers with the same rates, deterministically.

    chat_format_fail: share of answers to ChatAdapter prompts not in its format (DSPy then asks again through
    JSONAdapter); json_fail: share of answers to JSONAdapter prompts that are not JSON either; accuracy_scale: the
    real model's score before optimizing over the offline LM's on the same workload (scales the chance of a right
    answer); output_tokens: the real model's mean output tokens per call (a shorter answer is lengthened to about
    that many with text no adapter reads: after ChatAdapter's completed marker, or in an unformatted answer; a
    JSON answer is left as it is)."""

    model: str
    chat_format_fail: float = 0.0
    json_fail: float = 0.0
    accuracy_scale: float = 1.0
    output_tokens: float | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        top = {"accuracy_scale": 10, "output_tokens_per_call": MAX_OUTPUT_TOKENS}

        def rate(name: str, default):
            v = data.get(name, default)
            if v is None:
                return default
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= top.get(name, 1):
                raise ValueError(f"calibration {name} must be a number in range, got {v!r}")
            return float(v)

        return cls(model=str(data.get("model") or "unnamed"), chat_format_fail=rate("chat_format_fail", 0.0),
                   json_fail=rate("json_fail", 0.0), accuracy_scale=rate("accuracy_scale", 1.0),
                   output_tokens=rate("output_tokens_per_call", None))


MAX_OUTPUT_TOKENS = 100_000
CHARS_PER_TOKEN = 4  # English text in gpt-4o-mini's tokenizer, which counts the offline LM's tokens (about 4.2)
RAMBLE = (  # what a small model keeps writing after its answer, until its token limit
    "I hope this helps.",
    "Let me know if you have any other questions.",
    "Here is some more detail about the request above.",
    "Some further context may be useful here.",
    "Please note that this answer is based only on the message given.",
    "If anything is unclear, the message can be read again.",
    "Thank you for your patience while this is looked at.",
)


def lengthen(reply: str, tokens: float, key: str) -> str:
    """`reply` with filler sentences after it until it is about `tokens` long (unchanged if already as long)."""
    want = int(tokens * CHARS_PER_TOKEN)
    if len(reply) >= want:
        return reply
    rand, tail = Rand(f"{key}|ramble"), []
    size = len(reply) + 2
    while size < want:
        tail.append(rand.choice(RAMBLE))
        size += len(tail[-1]) + 1
    return reply + "\n\n" + " ".join(tail)


UNFORMATTED = "Sure! Here is my answer: {value}"  # what a small model writes instead of the adapter's format


class Brain:
    """Replies to prompts; what depends only on a prompt's prefix is worked out once per prefix."""

    def __init__(self, oracle: Oracle | None = None, cache_size: int = 4096,
                 calibration: Calibration | None = None) -> None:
        self.calibration = calibration
        self.oracle = oracle
        self.generic = Generic(oracle)
        self._prefixes = Memo(cache_size)  # key -> (Prefix, judged demos or None)

    def _prefix(self, key: str, system: str, messages: list[tuple[str, str]]):
        hit = self._prefixes.get(key)
        if hit is None:
            prefix = parse_prefix(system, messages[:-1])
            judged = None
            if self.oracle is not None:
                judged = judge_demos(self.oracle, with_last_turn(prefix, ""))
            hit = self._prefixes.put(key, (prefix, judged))
        return hit

    def reply(self, system: str, messages: list[tuple[str, str]], salt: str, key: str | None = None) -> str:
        return self.respond(system, messages, salt, key)[0]

    def respond(self, system: str, messages: list[tuple[str, str]], salt: str,
                key: str | None = None) -> tuple[str, str]:
        """(reply, role): role "program" when the prompt asks for the program's own output fields (the task's
        predictors, run by the student, a teacher or an evaluation), "optimizer" for the optimizer's own prompts
        (instruction proposals, reflections, rules: what a prompt or reflection LM answers)."""
        key = key or prefix_key(system, messages)
        prefix, judged = self._prefix(key, system, messages)
        last = messages[-1][1] if messages and messages[-1][0] == "user" else ""
        prompt = with_last_turn(prefix, last)
        rand = Rand(f"{_digest(key + last)}|{salt}")
        if not prompt.outputs and _RAW_REFLECTION in last:
            return raw_reflection(self.generic, last, rand), "optimizer"
        values: dict[str, str] = {}
        oracle, cal = self.oracle, self.calibration
        program = oracle is not None and any(f.name in oracle.fields for f in prompt.outputs)
        # every output field of the program counts for the role, also one the oracle does not answer (an
        # intermediate predictor's, e.g. a search query): oracle.program_fields where the oracle knows them
        role_fields = getattr(oracle, "program_fields", None) or (oracle.fields if oracle is not None else ())
        role = "program" if any(f.name in role_fields for f in prompt.outputs) else "optimizer"
        if program:
            row = oracle.find(prompt.inputs)
            if row is not None:
                skill = assess(oracle, prompt, row, salt, key, judged)
                if cal is not None and cal.accuracy_scale != 1.0:
                    skill = replace(skill, p=min(max(skill.p * cal.accuracy_scale, 0.0), 0.97))
                values = oracle.answer(prompt, row, skill, rand)
        for f in prompt.outputs:
            if f.name not in values:
                values[f.name] = self.generic.value(f, prompt, rand)
        reply = render(prompt, values)
        if cal is not None and prompt.outputs:
            fail = cal.json_fail if prompt.json_mode else cal.chat_format_fail
            if fail and unit(_digest(key + last), salt, "format") < fail:
                reply = UNFORMATTED.format(value=" ".join(values.values())[:200])
            elif prompt.json_mode:
                return reply, role  # (not lengthened: text after a JSON object is not read alike by every release)
        if cal is not None and cal.output_tokens:
            reply = lengthen(reply, cal.output_tokens, f"{_digest(key + last)}|{salt}")
        return reply, role
