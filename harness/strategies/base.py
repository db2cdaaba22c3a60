"""What a strategy entry is, and what it is given when it runs.

A strategy is a short declaration: how to build and compile one DSPy optimizer for a
profile. The child process (``harness.child``) builds the task's program, scores it,
calls ``Strategy.compile(ctx, program)``, then scores what comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:  # pragma: no cover
    import dspy

    from harness.record import BudgetFigures, TrainingInfo
    from harness.tasks import Task

Kind = Literal["prompt", "weights", "both"]


RESERVED = ("metric", "trainset", "valset", "devset", "student", "teacher", "program", "prompt_model",
            "reflection_lm")  # the harness's own arguments (the LMs: --prompt-lm)
# Where an optimizer takes the LM that writes its prompts (COPRO, SignatureOptimizer, MIPROv2, SIMBA: proposals;
# GEPA: reflections), --prompt-lm goes; every other call (the program's own, a teacher's) is the task LM's.
PROMPT_LM_KEYS = ("prompt_model", "reflection_lm")


@dataclass
class RunContext:
    """Everything a strategy's compile step may use. Built fresh in the run's own process."""

    task: "Task"
    profile: str  # the budgets: "quick", "standard" or "local" (a profile's budget_profile)
    trainset: list  # list[dspy.Example], inputs set
    devset: list
    lm: "dspy.LM"  # the run's LM: the task LM, and the teacher for weight strategies
    workdir: Path  # scratch folder of this run (checkpoints go here; its bytes are measured)
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {"student": "tiny", "mode": "full"}
    seed: int = 0
    strategy: str = ""  # the strategy's name (its --set settings are options["set"][strategy])
    # Filled by the strategy while it runs:
    extra: dict[str, Any] = field(default_factory=dict)  # strategy-specific figures -> record.extra
    workarounds: list[str] = field(default_factory=list)  # -> record.workaround
    training: "TrainingInfo | None" = None  # -> record.training
    budget: "BudgetFigures | None" = None  # -> record.budget (an optimizer that budgets its own metric calls: GEPA)
    eval_lm: "dspy.LM | None" = None  # LM the program is scored with, if not `lm` (weight strategies: the student)
    prompt_lm: "dspy.LM | None" = None  # --prompt-lm: given where the optimizer takes a proposer (PROMPT_LM_KEYS)

    @property
    def quick(self) -> bool:
        """Small budgets: the quick profile's, or the local profile's smaller ones (a real model on a CPU)."""
        return self.profile in ("quick", "local")

    def sized(self, quick: Any, local: Any = None, standard: Any = None) -> Any:
        """The setting for this run's budgets: `local` for the local profile (else its quick one), `quick`, or
        `standard` (the library defaults)."""
        if self.profile == "local" and local is not None:
            return local
        return quick if self.quick else standard

    @property
    def settings(self) -> dict[str, Any]:
        """What the user set for this strategy (--set NAME.key=value): over the profile's budgets."""
        return dict((self.options.get("set") or {}).get(self.strategy) or {})

    def tuned(self, cls: Any, init: dict[str, Any], compile: dict[str, Any] | None = None,
              skip: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
        """The optimizer's constructor and compile() keyword arguments with the user's settings put in: each
        setting goes where `cls` takes it (its __init__, else its compile); one it takes nowhere is refused.
        The record keeps what was set (extra.settings); `skip`: settings the strategy has applied itself."""
        import inspect

        init, comp = dict(init), dict(compile or {})
        takes_init = inspect.signature(cls.__init__).parameters
        takes_compile = inspect.signature(cls.compile).parameters
        if self.prompt_lm is not None:  # the proposer/reflection LM, where this optimizer has one
            given = [key for key in PROMPT_LM_KEYS if key in takes_init]
            for key in given:
                init[key] = self.prompt_lm
            self.extra["prompt_lm_given_as"] = [f"{cls.__name__}({key}=)" for key in given]
        for key, value in self.settings.items():
            if key in skip:  # the strategy applied it itself
                continue
            if key in RESERVED:
                raise ValueError(f"--set {self.strategy}.{key}: the harness gives {key} itself (the task's)")
            if key in takes_init:
                init[key] = value
            elif key in takes_compile:
                comp[key] = value
            else:
                names = sorted(k for k in [*takes_init, *takes_compile] if not k.startswith("_") and k not in ("self", "student", "trainset",
                                                                                      "valset", "metric", "kwargs"))
                raise ValueError(f"--set {self.strategy}.{key}: {cls.__name__} takes no {key!r}; its settings: "
                                 f"{', '.join(names)}")
        if self.settings:
            self.extra["settings"] = self.settings
        return init, comp

    def workaround(self, text: str) -> None:
        """Record a workaround for a DSPy defect (one line, with DSPy's own error)."""
        self.workarounds.append(" ".join(text.split()))


@dataclass(frozen=True)
class Strategy:
    name: str
    kind: Kind
    summary: str  # one line for `harness list`
    compile: Callable[[RunContext, "dspy.Module"], "dspy.Module"]
    tasks: tuple[str, ...] | None = None  # tasks it runs on; None: every task
    needs: tuple[str, ...] = ()  # importable modules it needs beyond dspy (checked before running)
    inference_heavy: bool = False  # its cost moves from compile time to inference (KNNFewShot, Ensemble)
    settable: bool = True  # its optimizer takes --set settings (RunContext.tuned); False: refused at the command line
    prepare: Callable[[RunContext, "dspy.Module"], "dspy.Module"] | None = None  # e.g. set the student LM
    scales_with: str = ""  # what its LM calls grow with, from its own loop (the report's cost card says it)

    def runs_on(self, task: str) -> bool:
        return self.tasks is None or task in self.tasks
