"""A task of the user's own: their program, their data and their metric, named on the command line.

``--program mymodule:make_program`` (a module on the path, or ``path/to/file.py:name``; a dspy.Module, or a
function returning one), ``--data train.jsonl[,dev.jsonl[,test.jsonl]]`` (JSONL, a JSON list, CSV, or
``module:function`` returning rows) and ``--metric mymodule:metric`` make a :class:`UserTask`. One data file is
split 60/20/20 in its own order (train, dev, test); two are train and dev, the dev rows also scoring the
test split; three are each split.

The offline LM answers the program with a :class:`DataOracle`: it finds the data row behind a prompt's
inputs and answers each output field the data holds with the row's value (right) or another row's value
(wrong), right with probability ``pass_rate`` under a bare prompt and, as for the shipped tasks, more often
with good demos (harness.lm.brain.assess). The user's own metric then judges those answers, so an
optimizer's search behaves as it would with a model of that accuracy: BootstrapFewShot stops once enough
traces pass, a candidate that scores higher is kept. The accuracy is a stated input, never a measurement.

The spec travels to each run's process in its options (``options["program"]``), so the child builds the
same task; nothing of it is stored but the names and paths.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from harness import registry
from harness.errors import HarnessError
from harness.tasks.base import SPLITS, Task
from harness.tasks.oracles import norm

DEFAULT_PASS_RATE = 0.5
_FILES: dict[Path, Any] = {}  # path/to/file.py -> its module, loaded once
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def add_arguments(p: Any, required: bool = False) -> None:
    """--program, --data, --metric and --name on an argparse parser or group (run, bench and estimate alike)."""
    p.add_argument("--program", required=required, default=None,
                   help="module:name or path/to/file.py:name: a dspy.Module, or a function returning one")
    p.add_argument("--data", required=required, default=None,
                   help="train.jsonl[,dev.jsonl[,test.jsonl]] (JSONL, JSON list or CSV), or module:function returning "
                        "rows; one file is split 60/20/20")
    p.add_argument("--metric", required=required, default=None,
                   help="module:name or path/to/file.py:name: metric(example, pred, trace=None)")
    p.add_argument("--name", default=None, help="the program's task name in records (default: its module)")


def load_object(ref: str, what: str, root: str | None = None) -> Any:
    """'module:name' or 'path/to/file.py:name' -> the object; a one-line error naming what is wrong. A module
    is looked for in `root` (the folder the command ran in) first."""
    mod_name, sep, attr = ref.rpartition(":")
    if not sep or not mod_name or not attr:
        raise HarnessError(f"{what} {ref!r}: give it as module:name or path/to/file.py:name")
    try:
        if mod_name.endswith(".py") or "/" in mod_name:
            path = Path(mod_name).resolve()
            if not path.is_file():
                raise HarnessError(f"{what} {ref!r}: no file {path}")
            module = _FILES.get(path)
            if module is None:  # once per file: the program and the metric of one file share one module
                name = f"_harness_user_{len(_FILES)}_{path.stem}"
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
                _FILES[path] = module
        else:
            where = str(Path(root or Path.cwd()).resolve())
            if where not in sys.path:
                sys.path.insert(0, where)
            module = importlib.import_module(mod_name)
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's module, named with its own error
        raise HarnessError(f"{what} {ref!r}: importing {mod_name} raised {type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}") from None
    if not hasattr(module, attr):
        raise HarnessError(f"{what} {ref!r}: {mod_name} has no {attr!r}")
    return getattr(module, attr)


def read_rows(ref: str, root: str | None = None) -> list[dict[str, Any]]:
    """Rows of one data file (JSONL, a JSON list, CSV) or of a function ('module:function')."""
    path = Path(ref)
    if not path.exists() and ":" in ref:
        rows = load_object(ref, "--data", root)
        try:
            rows = list(rows() if callable(rows) else rows)
        except Exception as exc:  # noqa: BLE001 - the user's function, named with its own error
            raise HarnessError(f"--data {ref}: raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") \
                from None
    elif not path.is_file():
        raise HarnessError(f"--data {ref}: no such file")
    elif path.suffix == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    elif path.suffix == ".json":
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise HarnessError(f"--data {ref}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(rows, list):
            raise HarnessError(f"--data {ref}: a .json file must hold a list of rows, not a {type(rows).__name__}")
    else:
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise HarnessError(f"--data {ref}: not valid JSONL (line {n}: {exc.msg})") from None
    out = []
    for i, row in enumerate(rows):
        if hasattr(row, "toDict"):  # a dspy.Example
            row = row.toDict()
        if not isinstance(row, dict):
            raise HarnessError(f"--data {ref}: row {i + 1} is not an object of fields (a {type(row).__name__})")
        out.append(dict(row))
    if not out:
        raise HarnessError(f"--data {ref}: no rows")
    return out


def as_program(obj: Any, ref: str) -> Any:
    import dspy

    program = obj() if callable(obj) and not isinstance(obj, dspy.Module) else obj
    if not isinstance(program, dspy.Module):
        raise HarnessError(f"--program {ref}: gives a {type(program).__name__}, not a dspy.Module")
    if not program.predictors():
        raise HarnessError(f"--program {ref}: the program has no predictor (dspy.Predict, ChainOfThought, ...)")
    return program


@dataclass(frozen=True)
class ProgramSpec:
    """What names the user's task; JSON-able, so it travels to each run's process."""

    program: str
    data: tuple[str, ...]
    metric: str
    pass_rate: float = DEFAULT_PASS_RATE
    name: str | None = None
    root: str | None = None  # the folder the command ran in: modules are found, and relative paths read, from it
    every_row_tests: bool = False  # --calibrate-with: the test split is every row (test, dev, then train rows)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProgramSpec":
        return cls(program=d["program"], data=tuple(d["data"]), metric=d["metric"],
                   pass_rate=float(d.get("pass_rate", DEFAULT_PASS_RATE)), name=d.get("name"), root=d.get("root"),
                   every_row_tests=bool(d.get("every_row_tests", False)))

    @classmethod
    def from_args(cls, program: str, data: str, metric: str, pass_rate: float | None = None,
                  name: str | None = None) -> "ProgramSpec":
        """From the command line, with file paths made absolute (a run's process starts in its own folder)."""
        def absolute(ref: str) -> str:
            head, sep, tail = ref.rpartition(":")
            if sep and (head.endswith(".py") or "/" in head):
                return f"{Path(head).resolve()}:{tail}"
            return str(Path(ref).resolve()) if Path(ref).exists() else ref

        files = tuple(absolute(d.strip()) for d in data.split(",") if d.strip())
        if not files:
            raise HarnessError("--data names no file: give train.jsonl[,dev.jsonl[,test.jsonl]]")
        return cls(program=absolute(program), data=files, metric=absolute(metric),
                   pass_rate=DEFAULT_PASS_RATE if pass_rate is None else float(pass_rate),
                   name=name or None, root=str(Path.cwd()))

    def as_dict(self) -> dict[str, Any]:
        return {"program": self.program, "data": list(self.data), "metric": self.metric,
                "pass_rate": self.pass_rate, "name": self.task_name, "root": self.root,
                "every_row_tests": self.every_row_tests}

    @property
    def task_name(self) -> str:
        if self.name:
            if not _NAME.match(self.name):
                raise HarnessError(f"--name {self.name!r}: letters, digits and . _ - only (it names files)")
            return self.name
        stem = self.program.rpartition(":")[0]
        return Path(stem).stem if stem.endswith(".py") else stem.rsplit(".", 1)[-1]


def shown(ref: str, root: str | None) -> str:
    """A path (or path:name) as the user typed it: relative to the folder the command ran in when inside it."""
    head, sep, tail = ref.rpartition(":") if ref.rpartition(":")[0].endswith(".py") else (ref, "", "")
    try:
        rel = str(Path(head).relative_to(Path(root or Path.cwd()).resolve())) if Path(head).is_absolute() else head
    except ValueError:
        rel = head
    return f"{rel}{sep}{tail}"


class DataOracle:
    """What the offline LM knows of the user's task: the data rows, answered right at a stated rate."""

    hints: tuple[str, ...] = ()
    hint_phrases: tuple[str, ...] = ()
    topic = "the program's task"

    def __init__(self, rows: list[dict[str, Any]], input_keys: tuple[str, ...], fields: tuple[str, ...],
                 pass_rate: float, program_fields: tuple[str, ...] = ()) -> None:
        self.rows, self.input_keys, self.fields, self.pass_rate = rows, input_keys, frozenset(fields), pass_rate
        self.answer_fields = fields
        self.program_fields = frozenset(program_fields) | self.fields  # every predictor's outputs: a program call
        self._norm = norm
        self.index: dict[str, dict] = {}
        for i, row in enumerate(rows):
            self.index.setdefault(self._key(row), {**row, "id": row.get("id", f"row{i}")})

    def _key(self, values: dict[str, Any]) -> str:
        return " | ".join(self._norm(str(values.get(k, ""))) for k in self.input_keys)

    def find(self, inputs: dict[str, str]) -> dict | None:
        return self.index.get(self._key(inputs))

    def base_p(self, row: dict) -> float:
        return self.pass_rate

    def demo_correct(self, row: dict, outputs: dict[str, str]) -> bool:
        return all(self._norm(outputs.get(f, "")) == self._norm(str(row.get(f, ""))) for f in self.answer_fields
                   if f in outputs)

    def related(self, row: dict, other: dict) -> bool:
        return all(str(row.get(f)) == str(other.get(f)) for f in self.answer_fields)

    @cached_property
    def _values(self) -> dict[str, list[str]]:
        return {f: sorted({str(r[f]) for r in self.rows if f in r}) for f in self.answer_fields}

    def answer(self, prompt, row: dict, skill, rand) -> dict[str, str]:
        out = {}
        for f in prompt.outputs:
            if f.name not in self.fields or f.name not in row:
                continue
            gold = str(row[f.name])
            if skill.right(f.name):
                out[f.name] = gold
                continue
            others = [o for o in (f.options or self._values.get(f.name, [])) if str(o) != gold]
            out[f.name] = str(rand.choice(others)) if others else f"not {gold}"
        return out


@dataclass(frozen=True)
class UserTask(Task):
    """A Task from the user's files: their rows per split, all of each split used (profiles' sizes do not apply;
    --n-train, --n-dev and --n-test take the first N)."""

    split_rows: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    split_note: str = ""
    pass_rate: float = DEFAULT_PASS_RATE

    def rows(self, split: str) -> tuple[dict[str, Any], ...]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        return self.split_rows[split]

    def examples(self, split: str, profile: str, n: int | None = None) -> list:
        import dspy

        rows = self.rows(split)
        n = min(n or len(rows), len(rows))
        return [dspy.Example(**r).with_inputs(*self.input_keys) for r in rows[:n]]


def _splits(spec: ProgramSpec) -> tuple[dict[str, tuple[dict, ...]], str]:
    files = [read_rows(ref, spec.root) for ref in spec.data]
    names = [shown(ref, spec.root) for ref in spec.data]
    if len(spec.data) > 3:
        raise HarnessError(f"--data takes 1 to 3 files (train[,dev[,test]]), got {len(spec.data)}")
    if len(files) == 1:
        rows = files[0]
        if len(rows) < 5:
            raise HarnessError(f"--data {names[0]}: {len(rows)} rows; one file needs 5 or more to split "
                               "60/20/20 into train, dev and test")
        a, b = int(len(rows) * 0.6), int(len(rows) * 0.8)
        return ({"train": tuple(rows[:a]), "dev": tuple(rows[a:b]), "test": tuple(rows[b:])},
                f"{names[0]} split 60/20/20 in its order: {a} train, {b - a} dev, {len(rows) - b} test rows")
    if len(files) == 2:
        return ({"train": tuple(files[0]), "dev": tuple(files[1]), "test": tuple(files[1])},
                f"train {names[0]} ({len(files[0])} rows), dev {names[1]} ({len(files[1])} rows), "
                "which also scores the test split")
    return (dict(zip(SPLITS, map(tuple, files))),
            ", ".join(f"{s} {ref} ({len(r)} rows)" for s, ref, r in zip(SPLITS, names, files)))


def build_task(spec: ProgramSpec) -> UserTask:
    """The user's task, checked: the program loads, the metric is callable, the data holds its first
    predictor's input fields (at least one of them) and at least one of the program's output fields."""
    if not 0 <= spec.pass_rate <= 1:
        raise HarnessError(f"--pass-rate must be between 0 and 1, got {spec.pass_rate}")
    make = load_object(spec.program, "--program", spec.root)
    program = as_program(make, spec.program)
    metric = load_object(spec.metric, "--metric", spec.root)
    if not callable(metric):
        raise HarnessError(f"--metric {spec.metric}: not callable")
    splits, note = _splits(spec)
    if spec.every_row_tests:  # the bare program measured on as many rows as there are (no demos: any row will do)
        splits["test"] = tuple({json.dumps(r, sort_keys=True, default=str): r
                                for s in ("test", "dev", "train") for r in splits[s]}.values())
        note += f"; every row ({len(splits['test'])}) scored as test rows, test rows first"
    columns = set().union(*(r.keys() for rows in splits.values() for r in rows))
    inputs = tuple(dict.fromkeys(k for p in program.predictors() for k in p.signature.input_fields))
    outputs = tuple(dict.fromkeys(k for p in program.predictors() for k in p.signature.output_fields))
    first_inputs = tuple(k for k in program.predictors()[0].signature.input_fields if k in columns)
    if not first_inputs:
        raise HarnessError(f"the data has none of the program's input fields ({', '.join(inputs)}); its columns: "
                           f"{', '.join(sorted(columns))}")
    answers = tuple(k for k in outputs if k in columns)
    if not answers:
        raise HarnessError(f"the data has none of the program's output fields ({', '.join(outputs)}) to score "
                           f"against; its columns: {', '.join(sorted(columns))}")
    all_rows = [r for s in SPLITS for r in splits[s]]

    def make_program() -> Any:
        return as_program(make, spec.program)

    def oracle() -> DataOracle:
        return DataOracle(all_rows, first_inputs, answers, spec.pass_rate, outputs)

    sizes = {s: len(splits[s]) for s in SPLITS}
    return UserTask(name=spec.task_name, summary=f"your program {shown(spec.program, spec.root)} on {note}",
                    program_doc=f"{shown(spec.program, spec.root)}: {len(program.predictors())} predictor(s)",
                    metric_name=getattr(metric, "__name__", spec.metric), input_keys=first_inputs,
                    answer_key=answers[0], make_program=make_program, metric=metric,
                    sizes={p: dict(sizes) for p in ("quick", "standard", "local")}, oracle=oracle,
                    split_rows=splits, split_note=note, pass_rate=spec.pass_rate,
                    notes={"program": spec.as_dict()})


def task_from_options(options: dict[str, Any]) -> UserTask | None:
    """The user's task a run's options name (options["program"]), registered so that get_task finds it."""
    raw = options.get("program") if options else None
    if not raw:
        return None
    task = build_task(ProgramSpec.from_dict(raw))
    registry.use_task(task)
    return task

