"""DSPy releases: which strategies each has, and the shims a run needs on each, declared here and nowhere else.

`harness matrix` runs the same bench against several DSPy releases (harness.matrix). A run's child process
imports whichever release its environment holds; what differs between releases and would stop a run (a
constructor argument, a return type) is absorbed by a shim named here, which the run records in its
`workaround` with the release it applied to. Facts from each release's source (../shared/notes/dspy-releases.md).
"""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass

from harness.errors import HarnessError

DEFAULT_RELEASES = ("2.6.27", "3.0.4", "3.3.1", "3.4.1")

# The first release that has each strategy (the others are in every release the matrix takes, 2.6.16 and later).
INTRODUCED = {"SIMBA": "2.6.16", "GRPO": "2.6.24", "GEPA": "3.0.0"}
OLDEST = "2.6.16"  # the oldest release the harness runs: SIMBA and DSPy's usage tracker start there


def parse(version: str) -> tuple[int, ...]:
    """'3.0.4' -> (3, 0, 4); a one-line error for anything but dotted whole numbers."""
    parts = str(version).strip().split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise HarnessError(f"DSPy release {version!r} is not a version like 3.0.4")
    return tuple(int(p) for p in parts)


def check_release(version: str) -> str:
    if parse(version) < parse(OLDEST):
        raise HarnessError(f"DSPy {version} is older than the harness runs ({OLDEST}: the first with SIMBA and "
                           "DSPy's usage tracker)")
    return version


def has_strategy(strategy: str, version: str) -> bool:
    first = INTRODUCED.get(strategy)
    return first is None or parse(version) >= parse(first)


@dataclass(frozen=True)
class Shim:
    """What a run does differently on releases `first`..`last` (inclusive; None: open-ended), and why."""

    name: str
    text: str
    first: str | None = None
    last: str | None = None

    def applies(self, version: str) -> bool:
        v = parse(version)
        return (self.first is None or v >= parse(self.first)) and (self.last is None or v <= parse(self.last))


SHIMS = {s.name: s for s in (
    Shim("mipro_permission", "MIPROv2(requires_permission_to_run=False): up to 2.6.27 its default (True) asks y/n on "
         "stdin and, with none, returns the program unoptimised (from 3.0.2 passing it raises, so it is left out)",
         last="2.6.27"),
    Shim("gepa_reflection_lm", "GEPA: no dspy InstructionProposer before 3.4.0 (GEPA's own reflective proposer "
         "calls reflection_lm): the reflection LM is wrapped to count its calls apart instead", first="3.0.0",
         last="3.3.99"),
    Shim("parallel_overrides", "dspy.utils.parallelizer (3.0.x) writes `thread_local_overrides.overrides[...]` on a "
         "ContextVar when a usage tracker is in the thread's overrides (parallelizer.py:95, AttributeError, swallowed: "
         "every item of the evaluation scores 0 with no LM call; seen in MIPROv2's trials on 3.0.4, whose "
         "dspy.context copies the harness's usage tracker into the overrides; 3.3.1 copies a dict instead): the "
         "ContextVar is given an `overrides` view of the thread's current dict", first="3.0.0", last="3.2.99"),
    Shim("chat_adapter_fallback", "dspy.ChatAdapter has no use_json_adapter_fallback before 3.1.0 (it always asks "
         "again through JSONAdapter when a parse fails): GRPO's adapter is a ChatAdapter subclass whose __call__ "
         "skips that retry, as use_json_adapter_fallback=False does from 3.1.0", last="3.0.99"),
    Shim("better_together_legacy", "BetterTogether before 3.2.0: BetterTogether(metric, prompt_optimizer=, "
         "weight_optimizer=, seed=) under dspy.settings.experimental, compile(student, trainset, strategy) with no "
         "valset (its prompt steps hold out valset_ratio=0.1 of the trainset) and candidates without scores",
         last="3.1.99"),
    Shim("grpo_legacy_job", "GRPO before 3.0.0 hands the job bare groups (no batch ids, no get_status) and calls "
         "job.update_model() every train_kwargs['update_interval'] steps: update_interval=1 (the local job trains "
         "the served version in place, so the update is a no-op); its time limit is checked at each step",
         last="2.6.99"),
    Shim("evaluate_float", "dspy.Evaluate returns a float up to 2.6.x (an EvaluationResult with .score from 3.0): "
         "read either", last="2.6.99"),
)}


@functools.cache
def running() -> str:
    """The DSPy release this process imports (its installed distribution's version)."""
    return importlib.metadata.version("dspy")


def shim(name: str, ctx=None) -> bool:
    """Whether shim `name` applies to the running release; with `ctx` (a RunContext), record it as a workaround
    naming the release."""
    s = SHIMS[name]
    if not s.applies(running()):
        return False
    if ctx is not None:
        ctx.workaround(f"DSPy {running()}: {s.text}")
    return True


ENGINE_API = "3.4.0"  # DSPy's custom-engine contract (dspy.clients.engines), which the harness's in-process LMs use


def has_engine_api() -> bool:
    """Whether the running release has DSPy's engine contract: the harness's in-process offline LM and its
    student are engines there; before it the student is an LM in the forward() form and the offline LM is reached
    over HTTP only."""
    return parse(running()) >= parse(ENGINE_API)


class _OverridesVar:
    """dspy's thread_local_overrides ContextVar with the `.overrides` attribute DSPy 3.0.x's parallelizer writes to:
    the dict this thread's context holds (what 3.3.1 builds and sets itself)."""

    def __init__(self, var) -> None:
        self._var = var

    @property
    def overrides(self):
        return self._var.get()

    def __getattr__(self, name):
        return getattr(self._var, name)


def patch_parallel_overrides(ctx=None) -> bool:
    """The "parallel_overrides" shim, where the running release has the defect (its parallelizer writes
    `thread_local_overrides.overrides`); True if applied."""
    if not SHIMS["parallel_overrides"].applies(running()):
        return False
    import importlib
    import inspect

    settings = importlib.import_module("dspy.dsp.utils.settings")  # (the module: dspy.dsp.utils.settings the object
    parallelizer = importlib.import_module("dspy.utils.parallelizer")  # shadows it as an attribute)

    if "thread_local_overrides.overrides" not in inspect.getsource(parallelizer) or \
            isinstance(settings.thread_local_overrides, _OverridesVar):
        return False
    settings.thread_local_overrides = _OverridesVar(settings.thread_local_overrides)
    shim("parallel_overrides", ctx)
    return True
