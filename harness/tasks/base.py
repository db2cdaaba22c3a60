"""What a task is: shipped data with fixed splits, a DSPy program and a metric."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

DATA_DIR = Path(__file__).parent / "data"
SPLITS = ("train", "dev", "test")


@lru_cache(maxsize=None)
def read_jsonl(path: Path) -> tuple[dict[str, Any], ...]:
    with open(path) as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


@dataclass(frozen=True)
class Task:
    name: str
    summary: str  # one line for `harness list`
    program_doc: str  # what the program is
    metric_name: str
    input_keys: tuple[str, ...]
    answer_key: str
    make_program: Callable[[], Any]  # -> dspy.Module
    metric: Callable[..., float]  # (example, prediction, trace=None) -> float or bool
    sizes: dict[str, dict[str, int]]  # profile -> split -> examples used
    data_name: str | None = None  # folder under DATA_DIR, if not `name` (plugins may reuse shipped data)
    oracle: Callable[[], Any] | None = None  # what the offline LM knows of the task (harness.lm.brain.Oracle)
    feedback: Callable[..., str] | None = None  # (example, prediction, trace) -> what the metric found, in words
    extra_files: tuple[str, ...] = ()  # other shipped files (e.g. the corpus)
    notes: dict[str, Any] = field(default_factory=dict)

    def rows(self, split: str) -> tuple[dict[str, Any], ...]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        return read_jsonl(DATA_DIR / (self.data_name or self.name) / f"{split}.jsonl")

    def examples(self, split: str, profile: str, n: int | None = None) -> list:
        """The first `n` (default `sizes[profile][split]`) rows of a split as dspy.Examples (inputs set)."""
        import dspy

        n = n or self.sizes[profile][split]
        rows = self.rows(split)
        if len(rows) < n:
            raise ValueError(f"task {self.name}: split {split} has {len(rows)} rows, profile {profile} needs {n}")
        keep = set(self.input_keys) | {self.answer_key}
        return [dspy.Example(**{k: v for k, v in r.items() if k in keep}).with_inputs(*self.input_keys)
                for r in rows[:n]]
