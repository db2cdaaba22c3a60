"""The optimizers' own counts of the LM calls they make, beside the fits and the measurements.

- **MIPROv2**: ``MIPROv2._estimate_lm_calls`` (dspy 3.4.1, ``dspy/teleprompt/mipro_optimizer_v2.py``),
  reimplemented here line for line, with the run-mode settings of ``_set_hyperparams_from_run_mode``
  (``auto="light"``: 6 candidates, a validation set capped at 100, mini-batches of 35 only when that set
  has more than 50 examples). tests/test_claims.py checks the reimplementation against DSPy's own
  functions. Its "task model calls" are *program* calls; one program call makes one LM call per predictor
  here, so LM calls = prompt-model calls + program calls x predictors. It leaves out the bootstrapping of
  the few-shot demo sets over the trainset (and adapter retries): a lower bound.
- **COPRO** (and SignatureOptimizer, the same code), read from ``COPRO.compile`` (``copro_optimizer.py``):
  P x D proposal requests (one per predictor at the start, then one per predictor after every depth but
  the last, each asking for ``n`` completions in one request) plus candidate evaluations over the whole
  trainset: with one predictor, B candidates per depth (B x D); with several, every candidate so far is
  re-evaluated for every predictor at every depth (P x B x D(D+1)/2). Each evaluation runs the program on
  all N training examples, P LM calls each. Adapter retries are not counted: a lower bound.
- **GEPA** budgets its own metric calls (``auto`` / ``max_metric_calls``); it runs as a strategy (not one of the
  study's) and its record's ``budget`` block holds the budget it resolved and the metric calls it used, but its
  ``auto`` formula is not set beside the fits yet (future work).

``inputs`` (run by ``harness scaling``, which imports DSPy) records the budgets the runs used and each
task's predictors in ``scaling.json``; ``calls`` evaluates a formula at any n_train from those inputs.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

from harness import registry
from harness.strategies.prompt import COPRO_QUICK, MIPRO_QUICK

COPRO_LIKE = ("COPRO", "SignatureOptimizer")
MIPRO = ("MIPROv2",)
FUTURE = {"GEPA": "GEPA's own budget (auto / max_metric_calls) beside the fits is future work; each GEPA record's "
                  "budget block has the budget it resolved and the metric calls it used"}

COPRO_SOURCE = ("COPRO.compile (dspy/teleprompt/copro_optimizer.py), counted: P x D proposal requests + "
                "evaluations x N x P LM calls, evaluations = B x D with one predictor, P x B x D(D+1)/2 with several; "
                "adapter retries not counted")
MIPRO_SOURCE = ("MIPROv2._estimate_lm_calls (dspy/teleprompt/mipro_optimizer_v2.py), reimplemented and checked "
                "against DSPy's own: prompt-model calls + program calls x P; the demo bootstrap over the trainset "
                "and adapter retries are not in it")


@dataclass(frozen=True)
class Count:
    """An optimizer's own count of its LM calls at one train size, and how it was reached."""

    calls: int
    detail: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "detail": self.detail, "source": self.source}


# --------------------------------------------------------------------------- COPRO


def copro_calls(settings: dict[str, Any], predictors: int, n_train: int) -> Count:
    b, d, p = int(settings["breadth"]), int(settings["depth"]), int(predictors)
    evaluations = b * d if p == 1 else p * b * d * (d + 1) // 2
    proposals = p * d
    calls = proposals + evaluations * n_train * p
    detail = (f"{proposals} proposal requests + {evaluations} evaluations x {n_train} examples x {p} LM call(s) "
              f"(breadth {b}, depth {d}, {p} predictor(s))")
    return Count(calls, detail, COPRO_SOURCE)


# --------------------------------------------------------------------------- MIPROv2


def mipro_run_mode(settings: dict[str, Any], predictors: int, n_dev: int) -> dict[str, Any]:
    """num_trials, valset size, minibatch and instruction candidates as MIPROv2.compile sets them
    (``_set_hyperparams_from_run_mode`` and ``_set_num_trials_from_num_candidates``)."""
    zeroshot = settings["max_bootstrapped_demos"] == 0 and settings["max_labeled_demos"] == 0
    if settings.get("auto") is None:
        return {"num_trials": int(settings["num_trials"]), "valset": n_dev, "minibatch": bool(settings["minibatch"]),
                "num_instruct_candidates": int(settings["num_candidates"])}
    n, val_size = int(settings["auto_n"]), int(settings["auto_val_size"])
    valset = min(val_size, n_dev)
    num_vars = predictors * (1 if zeroshot else 2)
    return {"num_trials": int(max(2 * num_vars * math.log2(n), 1.5 * n)), "valset": valset,
            "minibatch": valset > int(settings["min_minibatch_size"]),
            "num_instruct_candidates": n if zeroshot else int(n * 0.5)}


def mipro_estimate(predictors: int, num_trials: int, minibatch: bool, minibatch_size: int,
                   minibatch_full_eval_steps: int, valset: int, program_aware_proposer: bool,
                   num_instruct_candidates: int) -> tuple[int, int]:
    """(prompt-model calls, program calls): MIPROv2._estimate_lm_calls, line for line."""
    prompt_calls = 10 + num_instruct_candidates * predictors + (predictors + 1 if program_aware_proposer else 0)
    if not minibatch:
        task_calls = valset * num_trials
    else:
        full_eval_steps = num_trials // minibatch_full_eval_steps + 1
        task_calls = minibatch_size * num_trials + valset * full_eval_steps
    return prompt_calls, task_calls


def mipro_calls(settings: dict[str, Any], predictors: int, n_dev: int) -> Count:
    mode = mipro_run_mode(settings, predictors, n_dev)
    prompt_calls, program_calls = mipro_estimate(
        predictors, mode["num_trials"], mode["minibatch"], int(settings["minibatch_size"]),
        int(settings["minibatch_full_eval_steps"]), mode["valset"], bool(settings["program_aware_proposer"]),
        mode["num_instruct_candidates"])
    calls = prompt_calls + program_calls * predictors
    batch = (f"mini-batches of {settings['minibatch_size']} x {mode['num_trials']} trials + valset {mode['valset']} x "
             f"{mode['num_trials'] // int(settings['minibatch_full_eval_steps']) + 1} full evaluations"
             if mode["minibatch"] else f"valset {mode['valset']} x {mode['num_trials']} trials (no mini-batches)")
    detail = f"{prompt_calls} prompt-model calls + {program_calls} program calls ({batch}) x {predictors} LM call(s)"
    return Count(calls, detail, MIPRO_SOURCE)


# --------------------------------------------------------------------------- entry points


def has_formula(strategy: str) -> bool:
    return strategy in COPRO_LIKE or strategy in MIPRO


def calls(strategy: str, inputs: dict[str, Any] | None, task: str, n_train: int) -> Count | None:
    """The strategy's own count at n_train (n_dev = n_train // 2), from scaling.json's formula inputs."""
    if not inputs or not has_formula(strategy):
        return None
    settings = (inputs.get("settings") or {}).get(strategy)
    predictors = (inputs.get("predictors") or {}).get(task)
    if settings is None or predictors is None:
        return None
    if strategy in COPRO_LIKE:
        return copro_calls(settings, predictors, n_train)
    return mipro_calls(settings, predictors, n_train // 2)


def _defaults(fn) -> dict[str, Any]:
    return {k: v.default for k, v in inspect.signature(fn).parameters.items() if v.default is not inspect.Parameter.empty}


def settings_for(strategy: str, profile: str) -> dict[str, Any] | None:
    """The budget `strategy` runs with at `profile` (harness/strategies/prompt.py; standard: DSPy's defaults)."""
    from dspy.teleprompt import COPRO, MIPROv2  # heavy: only `harness scaling` needs it
    from dspy.teleprompt import mipro_optimizer_v2 as mipro

    if strategy in COPRO_LIKE:
        d = _defaults(COPRO.__init__)
        return dict(COPRO_QUICK) if profile == "quick" else {"breadth": d["breadth"], "depth": d["depth"]}
    if strategy in MIPRO:
        init, comp = _defaults(MIPROv2.__init__), _defaults(MIPROv2.compile)
        base = {"max_bootstrapped_demos": init["max_bootstrapped_demos"], "max_labeled_demos": init["max_labeled_demos"],
                "minibatch": comp["minibatch"], "minibatch_size": comp["minibatch_size"],
                "minibatch_full_eval_steps": comp["minibatch_full_eval_steps"],
                "program_aware_proposer": comp["program_aware_proposer"]}
        if profile == "quick":
            return {**base, "auto": None, **MIPRO_QUICK}
        light = mipro.AUTO_RUN_SETTINGS["light"]
        return {**base, "auto": "light", "auto_n": light["n"], "auto_val_size": light["val_size"],
                "min_minibatch_size": mipro.MIN_MINIBATCH_SIZE}
    return None


def inputs(strategies: list[str], tasks: list[str], profile: str) -> dict[str, Any]:
    """{"dspy", "settings": {strategy: budget}, "predictors": {task: n}} for scaling.json."""
    import dspy  # heavy: only `harness scaling` needs it

    settings = {s: settings_for(s, profile) for s in strategies if has_formula(s)}
    predictors = {t: len(registry.get_task(t).make_program().predictors()) for t in tasks}
    return {"dspy": dspy.__version__, "profile": profile, "settings": settings, "predictors": predictors,
            "sources": {"COPRO": COPRO_SOURCE, "MIPROv2": MIPRO_SOURCE}, "future": FUTURE}
