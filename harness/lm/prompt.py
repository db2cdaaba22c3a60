"""Reading a DSPy ChatAdapter / JSONAdapter prompt back into fields, demos and instruction.

The offline LM sees exactly what a hosted model would: a system prompt listing the input and
output fields with their types, optional demo turns, and a last user turn with the inputs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

from harness.lm.memo import Memo

# "1. `answer` (str): its description"; up to DSPy 2.6.22 a field without a description has no colon: "1. `answer` (str)"
_FIELD_LINE = re.compile(r"^\d+\. `(?P<name>[^`]+)` \((?:(?P<type>.*)\):|(?P<bare>[^:\n]*)\)[ \t]*$)", re.M)
_MARKER = re.compile(r"\[\[ ## (?P<name>[^#\]]+?) ## \]\]")
_SCHEMA_NOTE = re.compile(r"\[\[ ## (?P<name>[^#\]]+?) ## \]\]\n\{[^}\n]*\}\s+# note: the value you produce must adhere "
                          r"to the JSON schema: (?P<schema>\{.*\})$", re.M)
_SCHEMA_IN_NOTE = re.compile(r"# note: the value you produce must adhere to the JSON schema: (?P<schema>\{.*\})$")
_JSON_TEMPLATE = "Outputs will be a JSON object with the following fields."
_OBJECTIVE = "In adhering to this structure, your objective is:"
_RESPOND = "Respond with the corresponding output fields"
_RESPOND_JSON = "Respond with a JSON object"


@dataclass(frozen=True)
class OutField:
    name: str
    type: str  # as the adapter printed it: "str", "list[str]", "Literal['a', 'b']", "Action", ...
    schema: dict | None = None  # JSON schema for structured (pydantic) types

    @property
    def options(self) -> list[str] | None:
        if self.type.startswith("Literal["):
            return re.findall(r"'((?:[^'\\]|\\.)*)'", self.type) or re.findall(r'"([^"]*)"', self.type)
        return None


@dataclass
class Prompt:
    inputs_spec: list[OutField]
    outputs: list[OutField]
    instruction: str
    inputs: dict[str, str]
    demos: list[tuple[dict[str, str], dict[str, str]]] = field(default_factory=list)
    json_mode: bool = False

    def text_of(self, *names: str) -> str:
        return "\n".join(self.inputs.get(n, "") for n in names)


def _section(system: str, start: str, end: str) -> str:
    i = system.find(start)
    if i < 0:
        return ""
    j = system.find(end, i + len(start))
    return system[i + len(start): j if j >= 0 else len(system)]


def _fields(section: str) -> list[OutField]:
    return [OutField(m["name"], (m["type"] if m["type"] is not None else m["bare"]).strip())
            for m in _FIELD_LINE.finditer(section)]


_SPLIT_CACHE = Memo(20_000)


def split_markers(text: str) -> dict[str, str]:
    """'[[ ## a ## ]]\\nx\\n\\n[[ ## b ## ]]\\ny' -> {'a': 'x', 'b': 'y'} (the completed marker dropped).

    Demo turns repeat across calls, so results are memoised (callers must not mutate them)."""
    hit = _SPLIT_CACHE.get(text)
    if hit is not None:
        return hit
    out: dict[str, str] = {}
    parts = _MARKER.split(text)
    # parts = [before, name1, value1, name2, value2, ...]
    for k in range(1, len(parts) - 1, 2):
        name = parts[k].strip()
        if name != "completed":
            out[name] = parts[k + 1].strip()
    return _SPLIT_CACHE.put(text, out)


def _strip_respond(text: str) -> str:
    for marker in (_RESPOND, _RESPOND_JSON):
        i = text.rfind(marker)
        if i >= 0:
            return text[:i]
    return text


def _json_outputs(text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


@lru_cache(maxsize=4096)
def _system(system: str) -> tuple[tuple[OutField, ...], tuple[OutField, ...], str, bool]:
    """(input fields, output fields, instruction, json mode) of a system prompt; memoised."""
    inputs_spec = _fields(_section(system, "Your input fields are:", "Your output fields are:"))
    out_section = _section(system, "Your output fields are:", "All interactions will be structured")
    schemas = {m["name"].strip(): m["schema"] for m in _SCHEMA_NOTE.finditer(system)}
    schemas.update(_json_mode_schemas(system))
    outputs = []
    for f in _fields(out_section):
        schema = None
        if f.name in schemas:
            try:
                schema = json.loads(schemas[f.name])
            except json.JSONDecodeError:
                schema = None
        outputs.append(OutField(f.name, f.type, schema))
    i = system.find(_OBJECTIVE)
    instruction = " ".join(system[i + len(_OBJECTIVE):].split()) if i >= 0 else ""
    return tuple(inputs_spec), tuple(outputs), instruction, _JSON_TEMPLATE in system


def _json_mode_schemas(system: str) -> dict[str, str]:
    """JSONAdapter puts each field's schema note inside a JSON template: read it back."""
    i = system.find(_JSON_TEMPLATE)
    if i < 0:
        return {}
    start = system.find("{", i)
    try:
        template, _ = json.JSONDecoder().raw_decode(system[start:])
    except (json.JSONDecodeError, ValueError):
        return {}
    out = {}
    for name, note in template.items() if isinstance(template, dict) else ():
        m = _SCHEMA_IN_NOTE.search(str(note))
        if m:
            out[name] = m["schema"]
    return out


@dataclass(frozen=True)
class Prefix:
    """Everything before the last turn: the signature's fields, the instruction and the demos."""

    inputs_spec: tuple[OutField, ...]
    outputs: tuple[OutField, ...]
    instruction: str
    json_mode: bool
    demos: tuple[tuple[dict[str, str], dict[str, str]], ...]


def parse_prefix(system: str, turns: list[tuple[str, str]]) -> Prefix:
    """The system prompt and the demo turns (user/assistant pairs) before the last user turn."""
    inputs_spec, outputs, instruction, json_mode = _system(system)
    demos: list[tuple[dict[str, str], dict[str, str]]] = []
    pending: dict[str, str] | None = None
    for role, text in turns:
        if role == "user":
            if pending is not None:
                demos.append((pending, {}))
            pending = split_markers(_strip_respond(text))
        elif role == "assistant" and pending is not None:
            demos.append((pending, _json_outputs(text) if json_mode else split_markers(text)))
            pending = None
    if pending is not None:
        demos.append((pending, {}))
    return Prefix(inputs_spec, outputs, instruction, json_mode, tuple(demos))


def with_last_turn(prefix: Prefix, last_user: str) -> Prompt:
    return Prompt(inputs_spec=list(prefix.inputs_spec), outputs=list(prefix.outputs), instruction=prefix.instruction,
                  inputs=split_markers(_strip_respond(last_user)), demos=list(prefix.demos),
                  json_mode=prefix.json_mode)


def parse(system: str, messages: list[tuple[str, str]]) -> Prompt:
    """The whole prompt: the prefix, and the inputs of the last user turn."""
    last = len(messages) - 1
    while last >= 0 and messages[last][0] != "user":
        last -= 1
    return with_last_turn(parse_prefix(system, messages[:max(last, 0)]), messages[last][1] if last >= 0 else "")


def render(prompt: Prompt, values: dict[str, str]) -> str:
    """The reply a well-behaved model would write for the adapter that sent `prompt`."""
    if prompt.json_mode:
        obj = {}
        for f in prompt.outputs:
            v = values.get(f.name, "")
            if f.type != "str" and not f.options:
                try:
                    obj[f.name] = json.loads(v)
                    continue
                except (json.JSONDecodeError, TypeError):
                    pass
            obj[f.name] = v
        return json.dumps(obj, indent=2)
    blocks = [f"[[ ## {f.name} ## ]]\n{values.get(f.name, '')}" for f in prompt.outputs]
    return "\n\n".join(blocks + ["[[ ## completed ## ]]"])
