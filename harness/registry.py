"""The registries: strategies, tasks and profiles, each a short declaration.

Users add their own with ``HARNESS_PLUGINS=pkg.module[,other.module]``: a plugin module
calls :func:`add_strategy` / :func:`add_task` at import. The runner and its child processes
import the same plugins, so a plugin's entries run exactly like the built-in ones.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from harness.errors import HarnessError, unknown
from harness.record import variant
from harness.strategies.base import Strategy
from harness.tasks.base import Task


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    timeout_s: float  # default time limit of one run
    eval_threads: int  # threads of dspy.Evaluate with the offline LM (a real LM uses `real_lm_threads`)
    real_lm_threads: int = 8
    budgets: str | None = None  # the profile whose optimizer budgets it uses (None: its own: quick or standard)
    sizes: dict[str, int] | None = None  # examples per split (None: each task's sizes for `budgets`)
    tasks: tuple[str, ...] | None = None  # the tasks a bench runs by default (None: every task)
    kinds: tuple[str, ...] | None = None  # the strategy kinds a bench runs by default (None: every kind)
    options: tuple[tuple[str, str], ...] = ()  # run options it sets unless the user names them (e.g. the student)
    # Budget variants a bench runs beside each strategy's own run ("MIPROv2@auto=medium": the run with --set
    # MIPROv2.auto=medium), unless the user set that strategy's budget themselves
    variants: tuple[str, ...] = ()

    def options_for(self, lm: str | None, options: dict) -> dict:
        """The run options of a bench or run with this profile: the user's, over the profile's own. A profile's
        real student is the LM's own model when the LM is a local one (one model as task LM, teacher and
        student), so that its prompt and weight strategies are scored on the same model."""
        mine = dict(self.options)
        if str(mine.get("student", "")).startswith("local/") and str(lm or "").startswith("local/"):
            mine["student"] = str(lm)
        return {**mine, **options}

    @property
    def budget_profile(self) -> str:
        return self.budgets or self.name


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile("quick", "the whole suite small enough for CI: ~20-30 examples per split, small budgets",
                timeout_s=240, eval_threads=1),
        Profile("standard", "each strategy's library defaults (MIPROv2 and GEPA auto='light', and each also at "
                "auto='medium' and 'heavy'), 200 train / 100 dev / 100 test examples", timeout_s=3600, eval_threads=1,
                variants=("MIPROv2@auto=medium", "MIPROv2@auto=heavy", "GEPA@auto=medium", "GEPA@auto=heavy")),
        Profile("local", "sized for a real local model on 2 CPU cores (LM=local/...): every prompt strategy on "
                "classify, 6 train / 6 dev / 5 test examples, smaller budgets than quick (harness.strategies: *_LOCAL)", timeout_s=1800,
                eval_threads=1, real_lm_threads=1, budgets="local", sizes={"train": 6, "dev": 6, "test": 5},
                tasks=("classify",), kinds=("prompt",)),
        Profile("real-student", "every strategy on classify at the local profile's examples (6/6/5) and budgets, "
                "the weight strategies training a real pretrained student (local/smollm2-135m, or the LM's own model "
                "with LM=local/<name>; LoRA) on the CPU or a GPU", timeout_s=2400, eval_threads=1, real_lm_threads=1,
                budgets="local", sizes={"train": 6, "dev": 6, "test": 5}, tasks=("classify",),
                options=(("student", "local/smollm2-135m"), ("mode", "lora"))),
    ]
}

_EXTRA_STRATEGIES: dict[str, Strategy] = {}
_EXTRA_TASKS: dict[str, Task] = {}


def add_strategy(strategy: Strategy) -> Strategy:
    _EXTRA_STRATEGIES[strategy.name] = strategy
    return strategy


def add_task(task: Task) -> Task:
    _EXTRA_TASKS[task.name] = task
    return task


_USER_TASKS: dict[str, Task] = {}


def use_task(task: Task) -> Task:
    """The user's own program as a task (harness.tasks.user): named like no built-in or plugin task."""
    _load_plugins()
    builtin = {t.name for t in _builtin_tasks()} | set(_EXTRA_TASKS)
    if task.name in builtin:
        raise HarnessError(f"your program's task is named {task.name!r}, like a shipped task: give it another name "
                           "(--name)")
    _USER_TASKS[task.name] = task
    return task


@lru_cache(maxsize=1)
def _load_plugins() -> tuple[str, ...]:
    names = tuple(n.strip() for n in os.environ.get("HARNESS_PLUGINS", "").split(",") if n.strip())
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise HarnessError(f"cannot import plugin {name!r} from HARNESS_PLUGINS: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a plugin's own bug, named with the plugin
            raise HarnessError(f"plugin {name!r} from HARNESS_PLUGINS raised on import: "
                               f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    return names


def _merged(kind: str, builtin: list, extra: dict) -> dict:
    """Built-in entries and the plugins' ones; a plugin may add entries, never silently replace one."""
    known = {e.name: e for e in builtin}
    clash = [name for name in extra if name in known]
    if clash:
        raise HarnessError(f"a plugin in HARNESS_PLUGINS declares the {kind} {', '.join(map(repr, clash))}, which "
                           f"is built in: give the plugin's {kind} another name")
    return {**known, **extra}


def strategies() -> dict[str, Strategy]:
    from harness.strategies.gepa import STRATEGIES as gepa
    from harness.strategies.prompt import STRATEGIES as prompt
    from harness.strategies.weights import STRATEGIES as weights

    _load_plugins()
    return _merged("strategy", [*prompt, *gepa, *weights], _EXTRA_STRATEGIES)


def _builtin_tasks() -> list[Task]:
    from harness.tasks.registry import TASKS

    return list(TASKS)


def tasks() -> dict[str, Task]:
    _load_plugins()
    return {**_merged("task", _builtin_tasks(), _EXTRA_TASKS), **_USER_TASKS}


def get_strategy(name: str) -> Strategy:
    known = strategies()
    if name not in known:
        raise unknown("strategy", name, list(known), "Run `python -m harness list`.")
    return known[name]


def get_task(name: str) -> Task:
    known = tasks()
    if name not in known:
        raise unknown("task", name, list(known), "Run `python -m harness list`.")
    return known[name]


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise unknown("profile", name, list(PROFILES))
    return PROFILES[name]


def split_names(value: str | None, what: str = "name") -> list[str] | None:
    """'a,b, c' -> ['a', 'b', 'c']; None or '' -> None (meaning all); a list that names nothing (',')
    is refused rather than read as "all"."""
    if value is None or not value.strip():
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise HarnessError(f"the {what} list {value!r} names no {what}: give names separated by commas, "
                           f"or leave it out for all")
    return names


def parse_repeat(text: str | None, source: str = "REPEAT") -> int:
    """Runs per strategy and task from `text` (e.g. the REPEAT variable): a whole number, 1 or more."""
    raw = (text or "1").strip()
    try:
        value = int(raw)
    except ValueError:
        raise HarnessError(f"{source} must be a whole number, 1 or more, got {raw!r}") from None
    if value < 1:
        raise HarnessError(f"{source} must be 1 or more, got {value}")
    return value


BUDGET_LEVELS = {"": 0, "auto=light": 1, "auto=medium": 2, "auto=heavy": 3}


def budget_order(label: str) -> tuple[str, int, str]:
    """A run label's place among its strategy's: the profile's own run, then auto light, medium, heavy, then any
    other --set variant ("MIPROv2" < "MIPROv2@auto=medium" < "MIPROv2@auto=heavy")."""
    name, _, settings = label.partition("@")
    return name, BUDGET_LEVELS.get(settings, len(BUDGET_LEVELS)), settings


def split_variant(label: str) -> tuple[str, dict[str, Any]]:
    """"MIPROv2@auto=medium" -> ("MIPROv2", {"auto": "medium"}); "COPRO" -> ("COPRO", {}). Values read as
    parse_settings reads them (JSON where they are JSON), so that the run id made from them is `label` again."""
    name, _, rest = label.partition("@")
    settings: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, _, value = part.partition("=")
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value
    return name, settings


def plan(profile: str, strategy_names: list[str] | None = None, task_names: list[str] | None = None,
         repeat: int = 1, include_hidden: bool = False, options: dict[str, Any] | None = None
         ) -> list[tuple[str, str, int]]:
    """The (strategy, task, repeat) runs a bench does: every named strategy on every named task it runs on, and
    after each strategy the profile's budget variants of it ("MIPROv2@auto=medium"; split_variant), unless the
    bench's `options` set that strategy's budget (--set, or GEPA's --auto / --max-metric-calls)."""
    prof = get_profile(profile)
    if repeat < 1:
        raise HarnessError(f"REPEAT must be 1 or more, got {repeat}")
    all_s, all_t = strategies(), tasks()
    s_names = strategy_names or [n for n, s in all_s.items() if (include_hidden or not n.startswith("_"))
                                 and (prof.kinds is None or s.kind in prof.kinds)]
    t_names = task_names or [n for n in all_t if (include_hidden or not n.startswith("_"))
                             and (prof.tasks is None or n in prof.tasks)]
    for n in s_names:
        get_strategy(n)
    for n in t_names:
        get_task(n)
    options = options or {}
    user_set = set(options.get("set") or {}) | ({"GEPA"} if options.get("auto") or options.get("max_metric_calls")
                                                else set())
    labels = [label for s in s_names
              for label in [s, *(v for v in prof.variants if v.split("@")[0] == s and s not in user_set)]]
    runs = [(lb, t, r) for lb in labels for t in t_names if all_s[lb.split("@")[0]].runs_on(t) for r in range(repeat)]
    if not runs:
        raise HarnessError(f"no runs: strategies {s_names} do not run on tasks {t_names}")
    return runs


_SAFE = re.compile(r"^[A-Za-z0-9_.+-]+$")


def parse_settings(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """--set STRATEGY.key=value (repeatable) -> {strategy: {key: value}}; a value is read as JSON where it is one
    (4 -> 4, true -> True, 0.5 -> 0.5), else kept as text (medium). Unknown strategies are refused here."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        head, eq, value = item.partition("=")
        name, dot, key = head.partition(".")
        if not (eq and dot and name and key and value):
            raise HarnessError(f"--set {item!r}: give STRATEGY.key=value, e.g. --set MIPROv2.auto=medium")
        if not get_strategy(name).settable:
            raise HarnessError(f"--set {item!r}: {name} takes no --set settings (its budgets are the profile's)")
        if not (_SAFE.match(key) and _SAFE.match(value)):
            raise HarnessError(f"--set {item!r}: keys and values are letters, digits and . _ + - only")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out.setdefault(name, {})[key] = parsed
    return out


def run_id(strategy: str, task: str, repeat: int = 0, settings: dict[str, Any] | None = None) -> str:
    label = variant(settings)
    return f"{strategy}{'@' + label if label else ''}__{task}__r{repeat}"
