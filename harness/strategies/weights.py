"""The strategies that change model weights: BootstrapFinetune, GRPO and BetterTogether.

Each one trains a real student in the run's process (``harness.training``): ``prepare`` builds the
student LM (``ctx.options["student"]``, default ``"tiny"``; ``ctx.options["mode"]``, ``"full"`` or
``"lora"``), sets it on every predictor and as ``ctx.eval_lm``; ``compile`` runs DSPy's optimizer with
the run's LM (``ctx.lm``) as the teacher, fills ``ctx.training`` and points ``ctx.eval_lm`` at the
trained student.

Sizes: "quick" keeps each compile well under a minute on a 2-core CPU; "standard" uses the
library's defaults where they work (noted per setting below).

Options (all optional): student, mode, device, max_new_tokens, cache_dir (tokenizer cache),
train_kwargs (merged into the provider's SFT and GRPO settings), torch_threads (torch's intra-op
threads in the run's process; default 1 for the "tiny" student on the CPU, else torch's own default).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.releases import shim
from harness.strategies.base import RunContext, Strategy

NEEDS = ("torch", "transformers", "peft", "tokenizers", "safetensors")


@dataclass(frozen=True)
class Sizes:
    sft: dict[str, Any]  # provider SFT settings (harness.training.jobconfig.SFTConfig)
    grpo: dict[str, Any]  # dspy GRPO(...) arguments
    grpo_time_limit_s: float
    random_search: dict[str, Any]  # BootstrapFewShotWithRandomSearch(...) arguments (BetterTogether's p)
    max_new_tokens: int


PROFILES: dict[str, Sizes] = {
    "quick": Sizes(
        sft={"epochs": 100, "batch_size": 4, "grad_accum": 1, "max_steps": 12},
        grpo={"num_train_steps": 3, "num_dspy_examples_per_grpo_step": 2, "num_rollouts_per_grpo_step": 4,
              "num_threads": 2},
        grpo_time_limit_s=120.0,
        random_search={"max_bootstrapped_demos": 2, "max_labeled_demos": 2, "num_candidate_programs": 2},
        max_new_tokens=64,
    ),
    "standard": Sizes(
        sft={},  # DSPy LocalProvider's defaults: 5 epochs, batch 1 x 8 accumulation (lm_local.py:165-173)
        # GRPO's defaults (grpo.py:27-45) except the group size: its default of 1 rollout gives every
        # completion an advantage of 0; 4 = 2 student samples + 2 teacher answers per example.
        grpo={"num_train_steps": 100, "num_dspy_examples_per_grpo_step": 1, "num_rollouts_per_grpo_step": 4,
              "num_threads": 6},
        grpo_time_limit_s=1800.0,
        random_search={},  # library defaults: 16 candidates, 4 bootstrapped and 16 labeled demos
        max_new_tokens=128,
    ),
}


def sizes(ctx: RunContext) -> Sizes:
    if ctx.profile == "local":  # the local budgets (real-student profile): quick's sizes, with time for a real
        # student's GRPO: its rollouts generate at ~4 tokens/s on 2 CPU cores, so quick's 120 s allowed 1 of 3 steps
        return dataclasses.replace(PROFILES["quick"], grpo_time_limit_s=900.0)
    if ctx.profile not in PROFILES:
        raise ValueError(f"unknown profile {ctx.profile!r}; profiles are {', '.join(PROFILES)}")
    return PROFILES[ctx.profile]


def _cache_dir(ctx: RunContext) -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dspy-resource-bench" / "tokenizers"
    return Path(ctx.options.get("cache_dir") or default)


# --------------------------------------------------------------------------- shared steps


def prepare_student(ctx: RunContext, program: Any) -> Any:
    """Build the student (tokenizer trained on the task's texts), set it on every predictor."""
    import torch

    from harness.training.runtime import StudentRuntime
    from harness.training.student_lm import student_lm, tokenizer_corpus
    from harness.training.students import resolve_device

    s = sizes(ctx)
    t0 = time.perf_counter()
    name = ctx.options.get("student", "tiny")
    ctx.extra["student"] = name
    if name.startswith("local/"):  # a real pretrained model (harness.lm.local), made into a folder before the run
        from harness.lm.local import get_model, student_folder

        model = get_model(name.split("/", 1)[1])
        ctx.extra["student_source"] = f"{name}: {model.summary}, {model.params_m}M parameters, dequantized to fp32"
        name = str(student_folder(model))
        if not (Path(name) / "config.json").exists():
            raise ValueError(f"student {ctx.options['student']} is not made yet: run it through `harness run` or a "
                             "bench, which make it before the run")
    device = resolve_device(ctx.options.get("device"))
    threads = ctx.options.get("torch_threads", 1 if name == "tiny" and device == "cpu" else None)
    runtime = StudentRuntime.create(
        name,
        corpus=tokenizer_corpus(program, [*ctx.trainset, *ctx.devset]),
        cache_dir=_cache_dir(ctx),
        workdir=ctx.workdir,
        mode=ctx.options.get("mode", "full"),
        device=device,
        seed=ctx.seed,
        max_new_tokens=int(ctx.options.get("max_new_tokens", s.max_new_tokens)),
        threads=threads,
    )
    train_kwargs = dict(ctx.options.get("train_kwargs") or {})
    lm = student_lm(runtime, sft_defaults={**s.sft, "seed": ctx.seed, **train_kwargs},
                    grpo_defaults={"time_limit_s": s.grpo_time_limit_s, **train_kwargs})
    program.set_lm(lm)
    ctx.eval_lm = lm
    ctx.extra["student_build_s"] = round(time.perf_counter() - t0, 3)
    ctx.extra["torch_threads"] = torch.get_num_threads()
    return program


def _student(ctx: RunContext, program: Any) -> Any:
    """The student LM that ``prepare`` set (``prepare`` runs here if the runner did not call it)."""
    from harness.training.provider import LocalTrainingProvider

    if not isinstance(getattr(ctx.eval_lm, "provider", None), LocalTrainingProvider):
        prepare_student(ctx, program)
    return ctx.eval_lm


def _teacher(program: Any, lm: Any) -> Any:
    """A copy of the program whose predictors all use the run's LM."""
    teacher = program.deepcopy()
    teacher.set_lm(lm)
    return teacher


def _finish(ctx: RunContext, compiled: Any, student: Any) -> Any:
    """Record the training figures and score the program with the LM its predictors now hold."""
    from harness.training.student_lm import runtime_of

    ctx.training = runtime_of(student).training_info()
    ctx.eval_lm = compiled.predictors()[0].lm or student
    ctx.extra["student_model"] = ctx.eval_lm.model
    return compiled


# --------------------------------------------------------------------------- BootstrapFinetune


@contextlib.contextmanager
def _skip_errored_traces(ctx: RunContext):
    """dspy 3.4.1's BootstrapFinetune fails on a teacher whose answer does not parse, in two ways: it calls
    bootstrap_trace_data with raise_on_error=True (bootstrap_finetune.py:76), so one example whose teacher call
    raised leaves an empty prediction that cannot be unpacked (bootstrap_trace.py:134, a case DSPy's own comment there names as known) and
    the compile fails; and a captured parse failure (a FailedPrediction) scores -1, truthy, so it passes the metric
    filter and breaks the formatting of the training data. Workaround, only while it compiles: raise_on_error=False
    and FailedPrediction traces dropped, so such examples are skipped and the others train."""
    import dspy.teleprompt.bootstrap_finetune as bf

    FailedPrediction = getattr(bf, "FailedPrediction", None)  # (defined there up to 2.6.x, then in bootstrap_trace)
    if FailedPrediction is None:
        from dspy.teleprompt.bootstrap_trace import FailedPrediction

    real = bf.bootstrap_trace_data

    def failed(d: dict) -> bool:
        return isinstance(d.get("prediction"), FailedPrediction) or any(
            isinstance(step[2], FailedPrediction) for step in d.get("trace") or [] if len(step) > 2)

    def tolerant(*args, **kwargs):
        kwargs.setdefault("raise_on_error", False)
        data = real(*args, **kwargs)
        n = len(kwargs.get("dataset") or (args[1] if len(args) > 1 else []))
        kept = [d for d in data if not failed(d)]
        if len(kept) < n:
            ctx.workaround("dspy BootstrapFinetune cannot train from a teacher whose answer does not parse: with "
                           "raise_on_error=True (dspy/teleprompt/bootstrap_finetune.py:76) an example whose teacher "
                           "call raised fails the compile (`ValueError: not enough values to unpack (expected 2, got "
                           "0)`, dspy/teleprompt/bootstrap_trace.py:134), and a captured parse failure scores -1, "
                           "which passes its metric filter and then fails formatting (`'FailedPrediction' object has "
                           "no attribute 'get'`, dspy/adapters/chat_adapter.py:209); bootstrap_trace_data given "
                           "raise_on_error=False and its FailedPrediction traces dropped, so such examples are skipped")
            ctx.extra["traces_skipped"] = ctx.extra.get("traces_skipped", 0) + n - len(kept)
        return kept

    bf.bootstrap_trace_data = tolerant
    try:
        yield
    finally:
        bf.bootstrap_trace_data = real



def compile_bootstrap_finetune(ctx: RunContext, program: Any) -> Any:
    import dspy

    student = _student(ctx, program)
    optimizer = dspy.BootstrapFinetune(metric=ctx.task.metric)
    with dspy.context(lm=ctx.lm), _skip_errored_traces(ctx):
        compiled = optimizer.compile(program, trainset=list(ctx.trainset), teacher=_teacher(program, ctx.lm))
    return _finish(ctx, compiled, student)


# --------------------------------------------------------------------------- GRPO


def _chat_adapter_without_fallback(ctx: RunContext) -> Any:
    """ChatAdapter that never asks again through JSONAdapter (the "chat_adapter_fallback" shim before 3.1.0)."""
    import dspy
    from dspy.adapters.base import Adapter

    if not shim("chat_adapter_fallback", ctx):
        return dspy.ChatAdapter(use_json_adapter_fallback=False)

    class ChatAdapterWithoutFallback(dspy.ChatAdapter):
        use_json_adapter_fallback = False  # (read by the harness's failure counting)
        __call__ = Adapter.__call__  # ChatAdapter's own retries through JSONAdapter on any error
        acall = Adapter.acall

    return ChatAdapterWithoutFallback()


def compile_grpo(ctx: RunContext, program: Any) -> Any:
    import dspy
    from dspy.teleprompt.grpo import GRPO

    from harness.training.provider import ReinforceLimitReached

    s = sizes(ctx)
    student = _student(ctx, program)
    # Rollouts must be sampled (GRPO's groups need different completions, and the engine never
    # sees rollout_id); the program is scored greedily afterwards.
    rollout_lm = student.copy(temperature=1.0)
    program.set_lm(rollout_lm)
    # One adapter for rollouts and training data: without `adapter=` GRPO formats the training
    # completions with XMLAdapter (grpo.py:467) while the rollouts were made with ChatAdapter; and
    # with ChatAdapter's JSON fallback a failed parse is retried in JSON and that JSON text would be
    # trained under the ChatAdapter prompt (bootstrap_trace.py:69).
    adapter = _chat_adapter_without_fallback(ctx)
    train_kwargs = {"max_steps": s.grpo["num_train_steps"]}
    if shim("grpo_legacy_job", ctx):
        train_kwargs["update_interval"] = 1
    optimizer = GRPO(metric=ctx.task.metric, multitask=True, exclude_demos=True, adapter=adapter, seed=ctx.seed,
                     train_kwargs=train_kwargs, **s.grpo)
    teacher_cache = ctx.lm.cache
    compiled = program
    try:
        with dspy.context(lm=ctx.lm, adapter=adapter):
            # The student must be one of the teachers (grpo.py:306); the run's LM is the other, so
            # every group holds the student's samples and the teacher's answers.
            compiled = optimizer.compile(program, trainset=list(ctx.trainset),
                                         teacher=[program, _teacher(program, ctx.lm)])
    except ReinforceLimitReached as stop:
        ctx.workaround(f"dspy GRPO waits with no timeout for a new batch id (teleprompt/grpo.py:369); "
                       f"the local job ended it: {stop.reason}")
        ctx.extra["grpo_stopped"] = stop.reason
    finally:
        ctx.lm.cache = teacher_cache  # GRPO turns it off (grpo.py:317-320) and restores it only on success
    trained = student.copy(model=rollout_lm.model)  # the version GRPO trained, greedy
    compiled.set_lm(trained)
    return _finish(ctx, compiled, student)


# --------------------------------------------------------------------------- BetterTogether


def _bootstrap_finetune_from(teacher_lm: Any, **kwargs: Any) -> Any:
    """BootstrapFinetune whose traces come from the current student program run on `teacher_lm`.

    Inside BetterTogether the weight step gets no teacher and would bootstrap from the student's
    own LM (bootstrap_finetune.py:295-297), which for a random-initialised student yields no
    usable trace. Running the *current* program (with the prompt step's demos) on the run's LM
    keeps the training prompts identical to the ones the student is then called with.
    """
    from dspy.teleprompt.bootstrap_finetune import BootstrapFinetune

    class BootstrapFinetuneFromLM(BootstrapFinetune):
        def compile(self, student, trainset, teacher=None):
            return super().compile(student, trainset, teacher if teacher is not None else _teacher(student, teacher_lm))

    return BootstrapFinetuneFromLM(**kwargs)


def _list_teacher_error(program: Any) -> str | None:
    """BetterTogether.compile wraps `teacher=` in a list (bettertogether.py:316) and hands that list to
    every step; BootstrapFewShot then calls `teacher.deepcopy()` on it (bootstrap.py:100). Returns
    DSPy's error when a list teacher still breaks BootstrapFewShot (so the record can name it), None
    once DSPy accepts one."""
    from dspy.teleprompt import BootstrapFewShot

    try:
        BootstrapFewShot(max_labeled_demos=0)._prepare_student_and_teacher(program, [program.deepcopy()])
    except AttributeError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def compile_better_together(ctx: RunContext, program: Any) -> Any:
    import dspy
    from dspy.teleprompt import BetterTogether, BootstrapFewShotWithRandomSearch

    s = sizes(ctx)
    student = _student(ctx, program)
    metric = ctx.task.metric
    # Passing teacher= makes the prompt steps fail, and BetterTogether only logs that and keeps the
    # unoptimized program (flag_compilation_error_occurred). So no teacher= here: the prompt steps use
    # the global LM (the run's), and the weight step gets the run's LM as its teacher by a subclass.
    p = BootstrapFewShotWithRandomSearch(metric=metric, **s.random_search)
    w = _bootstrap_finetune_from(ctx.lm, metric=metric)
    if shim("better_together_legacy", ctx):
        # The prompt steps hold out part of the trainset themselves; no valset, no teacher= in this API.
        with dspy.context(lm=ctx.lm, experimental=True), _skip_errored_traces(ctx):
            optimizer = BetterTogether(metric=metric, prompt_optimizer=p, weight_optimizer=w, seed=ctx.seed)
            compiled = optimizer.compile(program, trainset=list(ctx.trainset), strategy="p -> w -> p")
        return _better_together_done(ctx, compiled, student)
    broken = _list_teacher_error(program)
    if broken:
        ctx.workaround(f"BetterTogether.compile(teacher=...) wraps the teacher in a list (dspy/teleprompt/"
                       f"bettertogether.py:316) and BootstrapFewShot calls .deepcopy() on it (dspy/teleprompt/"
                       f"bootstrap.py:100): `{broken}`, and the prompt step is skipped silently; teacher= not "
                       "passed, the weight step's BootstrapFinetune given the run's LM as teacher by a subclass")
    optimizer = BetterTogether(metric=metric, p=p, w=w)
    # The prompt step works on reset copies whose predictors have no LM (predict.py:70), so it
    # bootstraps and scores candidates on the globally configured LM: the run's LM here.
    with dspy.context(lm=ctx.lm), _skip_errored_traces(ctx):
        compiled = optimizer.compile(program, trainset=list(ctx.trainset), valset=list(ctx.devset) or None,
                                     seed=ctx.seed, strategy="p -> w -> p")
    return _better_together_done(ctx, compiled, student)


def _better_together_done(ctx: RunContext, compiled: Any, student: Any) -> Any:
    """Its candidates (dicts with a score from 3.2.0; (strategy, program) pairs before, unscored) in the record."""
    def candidate(c: Any) -> dict[str, Any]:
        strategy, score = (c["strategy"], c["score"]) if isinstance(c, dict) else (c[0], None)
        return {"strategy": strategy or "baseline", "score": score}

    ctx.extra["better_together"] = {
        "candidates": [candidate(c) for c in getattr(compiled, "candidate_programs", [])],
        "step_failed": bool(getattr(compiled, "flag_compilation_error_occurred", False)),
    }
    return _finish(ctx, compiled, student)


# --------------------------------------------------------------------------- entries

BOOTSTRAP_FINETUNE = Strategy(
    name="BootstrapFinetune",
    kind="weights",
    summary="fine-tunes a local student on the run LM's metric-filtered traces (SFT, in process)",
    compile=compile_bootstrap_finetune,
    prepare=prepare_student,
    needs=NEEDS,
    settable=False,
    scales_with="train examples (the teacher's traces); training time with SFT steps x student size",
)
GRPO_STRATEGY = Strategy(
    name="GRPO",
    kind="weights",
    summary="group-relative policy gradient on a local student's rollouts and the run LM's answers",
    compile=compile_grpo,
    prepare=prepare_student,
    needs=NEEDS,
    settable=False,
    scales_with="train steps x examples per step x rollouts (student and teacher calls)",
)
BETTER_TOGETHER = Strategy(
    name="BetterTogether",
    kind="both",
    summary='prompt then weights then prompt ("p -> w -> p"): random-search demos and SFT of a local student',
    compile=compile_better_together,
    prepare=prepare_student,
    needs=NEEDS,
    settable=False,
    scales_with="its random-search prompt steps (candidates x dev) plus one fine-tuning step",
)
STRATEGIES = (BOOTSTRAP_FINETUNE, GRPO_STRATEGY, BETTER_TOGETHER)
