"""GEPA (``dspy.GEPA``, dspy 3.4.1 with the ``gepa`` 0.1.4 engine): reflective prompt evolution, declared like the
others. It is not one of the study's 15 strategies: the claims skip it and the report shows it "not in the study".

Budget, from the run's options (``--auto``, ``--max-metric-calls``): ``auto`` light|medium|heavy or
``max_metric_calls`` (exactly one); by default quick: ``max_metric_calls=QUICK_METRIC_CALLS``, standard:
``auto="light"``. Everything else is DSPy's default (merge on, reflection minibatch 3, seed 0), but
``num_threads=1`` as for the other optimizers here.

Metric: GEPA's five-argument metric ``(gold, pred, trace, pred_name, pred_trace)`` returning
``dspy.Prediction(score=the task's own check, feedback=what that check found, in words)``
(``harness.tasks.feedback``).

Reflection LM: the run's LM. Its calls are told apart from the program's by counting every call served while
GEPA's instruction proposer runs (DSPy's own ``InstructionProposer``, subclassed only to wrap its call) into a
second counter as well (``harness.lm.usage.also_counting``, in the proposer's thread); the program's calls are
the compile phase's calls minus those. Both are in the record's ``budget`` block with the metric calls GEPA
counted itself (``total_metric_calls``) against the budget it ran under (for ``auto``, the number it computed).
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.releases import shim
from harness.strategies.base import RunContext, Strategy

AUTO = ("light", "medium", "heavy")
# 10 passes over the quick profile's 16-example valset: compile 0.4-1 s in-process on the 2-core VM; with 64, GEPA
# kept at most 2 candidates beside the seed and no task's test score moved (160: math 62.5 -> 75, classify
# 66.7 -> 87.5).
LOCAL_METRIC_CALLS = 24  # the local profile's: the seed on its 6-example valset, then a few proposals
QUICK_METRIC_CALLS = 160
# GEPA checks its budget between iterations, so it ends at most one iteration past it: two reflection minibatches
# (parent and child, 3 examples each) and one full valset evaluation of an accepted candidate.
REFLECTION_MINIBATCH = 3


def overshoot_bound(n_val: int) -> int:
    """The most metric calls one GEPA iteration can take (what a run may use beyond its budget)."""
    return 2 * REFLECTION_MINIBATCH + n_val


MAX_METRIC_CALLS = 10**9
SPLIT_METHOD = ("reflection: every LM call served while GEPA's instruction proposer ran, in its thread "
                "(harness.lm.usage.also_counting around dspy's InstructionProposer); task: the compile phase's "
                "calls minus those")


BUDGET_KEYS = ("auto", "max_metric_calls")


def budget_options(options: dict[str, Any]) -> dict[str, Any]:
    """{"auto": preset} or {"max_metric_calls": n} from the run's options, {} when neither is given; a bad value is
    a one-line HarnessError (exit 2)."""
    auto, calls = options.get("auto"), options.get("max_metric_calls")
    if auto is not None and calls is not None:
        raise HarnessError(f"give either --auto or --max-metric-calls, not both (got auto={auto!r}, "
                           f"max_metric_calls={calls!r})")
    if auto is not None:
        if auto not in AUTO:
            raise HarnessError(f"--auto must be light, medium or heavy, got {auto!r}")
        return {"auto": auto}
    if calls is not None:
        return {"max_metric_calls": positive_int(calls)}
    return {}


def positive_int(value: Any) -> int:
    """A whole number from 1 to MAX_METRIC_CALLS (a bool, a float, '0', '-3', '1e3' or 'x' is refused)."""
    text = str(value).strip()
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()) or len(text) > 10 \
            or not 1 <= int(text) <= MAX_METRIC_CALLS:
        raise HarnessError(f"--max-metric-calls must be a whole number from 1 to {MAX_METRIC_CALLS:,}, got {value!r}")
    return int(text)


def resolve_budget(ctx: RunContext) -> dict[str, Any]:
    """The budget asked, or the profile's default (quick: QUICK_METRIC_CALLS metric calls; standard: auto="light")."""
    asked = budget_options(ctx.options) or budget_options(ctx.settings)  # --auto/--max-metric-calls, or --set GEPA.auto=
    return asked or ctx.sized(quick={"max_metric_calls": QUICK_METRIC_CALLS},
                              local={"max_metric_calls": LOCAL_METRIC_CALLS}, standard={"auto": "light"})


def feedback_metric(task):
    """GEPA's metric for `task`: score = the task's own metric (1.0 or 0.0), feedback = what it found, in words."""
    import dspy

    from harness.tasks.feedback import feedback_text

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return dspy.Prediction(score=float(task.metric(gold, pred, trace)),
                               feedback=feedback_text(task, gold, pred, trace))

    metric.__name__ = f"{task.name}_feedback_metric"
    return metric


def counted_proposer(counter):
    """DSPy's own default InstructionProposer, whose calls are also counted into `counter`."""
    from dspy.teleprompt.gepa.instruction_proposal import InstructionProposer

    from harness.lm.usage import also_counting

    class CountedProposer(InstructionProposer):
        def __call__(self, *args, **kwargs):
            with also_counting(counter):
                return super().__call__(*args, **kwargs)

    return CountedProposer()


class CountedLM:
    """The reflection LM of GEPA before DSPy 3.4 (harness.releases "gepa_reflection_lm"): `lm`, its calls also
    counted into `counter` (GEPA calls it as `reflection_lm(prompt)`)."""

    def __init__(self, lm, counter) -> None:
        self.lm, self.counter = lm, counter

    def __call__(self, *args, **kwargs):
        from harness.lm.usage import also_counting

        with also_counting(self.counter):
            return self.lm(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.lm, name)


def _minus(total, part, price):
    """LMUsage `total` minus `part`; tokens and spend None where either is not measured."""
    from harness.record import LMUsage

    def sub(a, b):
        return None if a is None or b is None else max(a - b, 0)

    inp, out = sub(total.input_tokens, part.input_tokens), sub(total.output_tokens, part.output_tokens)
    cost = price.cost(inp, out) if price is not None and inp is not None and out is not None else None
    return LMUsage(lm_calls=max(total.lm_calls - part.lm_calls, 0), input_tokens=inp, output_tokens=out,
                   api_cost_usd=None if cost is None else round(cost, 8),
                   calls_without_usage=max(total.calls_without_usage - part.calls_without_usage, 0))


def budget_figures(opt, compiled, asked: dict[str, Any], reflection, total, price):
    """The record's budget block: what was asked, what GEPA resolved and used, and the reflection/task split."""
    from harness.record import BudgetFigures

    res = compiled.detailed_results  # track_stats=True: DspyGEPAResult
    text = f'auto="{asked["auto"]}"' if "auto" in asked else f"max_metric_calls={asked['max_metric_calls']}"
    return BudgetFigures(optimizer="GEPA", asked=text, auto=asked.get("auto"),
                         max_metric_calls_asked=asked.get("max_metric_calls"),
                         metric_call_budget=int(opt.max_metric_calls), metric_calls=int(res.total_metric_calls),
                         full_val_evals=res.num_full_val_evals, candidates=len(res.candidates),
                         reflection=reflection, task=_minus(total, reflection, price), split_method=SPLIT_METHOD)


def gepa(ctx: RunContext, program):
    import dspy

    from harness.lm.usage import COUNTER, UsageCounter, since

    asked = resolve_budget(ctx)
    reflection = UsageCounter()
    reflection.price = COUNTER.prompt_price if ctx.prompt_lm is not None else COUNTER.price  # (--prompt-lm)
    before = COUNTER.totals()
    counting = ({"reflection_lm": CountedLM(ctx.lm, reflection)} if shim("gepa_reflection_lm", ctx) else
                {"reflection_lm": ctx.lm, "instruction_proposer": counted_proposer(reflection)})
    init, comp = ctx.tuned(dspy.GEPA, {"metric": feedback_metric(ctx.task), **counting, "num_threads": 1,
                                       "track_stats": True, "seed": ctx.seed, **asked},
                           skip=tuple(BUDGET_KEYS))  # (a budget set is in `asked` already)
    opt = dspy.GEPA(**init)
    compiled = opt.compile(program, trainset=ctx.trainset, valset=ctx.devset, **comp)
    ctx.budget = budget_figures(opt, compiled, asked, reflection.usage(), since(before), COUNTER.price)
    return compiled


STRATEGIES = [
    Strategy("GEPA", "prompt", "reflective prompt evolution: an LM reads feedback on traces and rewrites the "
             "instructions (quick: 160 metric calls, standard: auto='light'; not in the study)", gepa, needs=("gepa",),
             scales_with="its metric-call budget (auto or max_metric_calls), plus one reflection call per proposal"),
]
