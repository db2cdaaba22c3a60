"""The run's own process: build the LM, score the program, compile it, score it again.

Started by ``harness.runner`` as ``python -m harness.child RUN_DIR``. It reads ``RUN_DIR/spec.json``,
writes a heartbeat to ``RUN_DIR/progress.json`` every second (phase, calls, tokens: the runner
shows it, and keeps it if this process never finishes) and its result to ``RUN_DIR/result.json``.
Each phase is measured inside this process with the kernel's counters.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from harness.files import atomic_write_json
from harness.measure import rss_hwm_mb, self_counters, torch_cuda_peaks
from harness.releases import patch_parallel_overrides, shim


def one_line(exc: BaseException) -> str:
    """`Type: message`; an exception with no message that was raised while handling another (DSPy's InferRules
    turns any error into a bare `assert`, infer_rules.py:69) names the one it replaced."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if not str(exc).strip() and cause is not None and cause is not exc:
        text += f" raised while handling {one_line(cause)}"
    return text if len(text) <= 400 else text[:397] + "..."


class Child:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.spec: dict[str, Any] = json.loads((run_dir / "spec.json").read_text())
        self.phase = "setup"
        self.phases: list[dict[str, Any]] = []
        self.optimizer_prompts: dict[str, Any] = {}  # phase -> usage of the optimizer's own prompts (offline LM)
        self.prompt_lm_phases: dict[str, Any] = {}  # phase -> the --prompt-lm's share of its calls
        self.result: dict[str, Any] = {"phases": self.phases}
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self.in_process = self.spec.get("lm_kind", "offline") == "offline"  # the offline LM in this process

    # ------------------------------------------------------------------ heartbeat

    def _usage(self) -> dict[str, Any]:
        from harness.lm.usage import COUNTER

        return COUNTER.usage().model_dump()

    def _failures(self) -> dict[str, Any]:
        """The run's LM failures so far, with the examples errored in the evaluations measured so far."""
        from harness.lm.usage import COUNTER

        errored = {}
        for phase in self.phases:
            n = (phase.get("lm_failures") or {}).get("errored_examples", {}).get(phase["name"])
            if n is not None:
                errored[phase["name"]] = n
        return COUNTER.failures().model_copy(update={"errored_examples": errored}).model_dump()

    def _beat(self) -> None:
        parent = os.getppid()
        while not self._stop.wait(1.0):
            if os.getppid() != parent:  # the runner is gone (killed): do not run on as an orphan
                os._exit(3)
            try:
                atomic_write_json(self.run_dir / "progress.json",
                                  {"phase": self.phase, "elapsed_s": round(time.perf_counter() - self.t0, 1),
                                   "usage": self._usage(), "lm_failures": self._failures(), "phases": self.phases})
            except Exception:  # a heartbeat must never kill the run
                pass

    # ------------------------------------------------------------------ phases

    def measured(self, name: str, fn, n_examples: int | None = None, evaluation: bool = False):
        """Run `fn` as the phase `name`, measured. An evaluation's `fn` returns (score, errored examples)."""
        from harness.lm.usage import COUNTER, failures_since, since

        self.phase = name
        before = COUNTER.totals()
        opt_before = self._optimizer_prompts().totals() if self.in_process else None
        w0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        from harness.lm.budget import BudgetReached

        def phase(failures, engine_s: float | None) -> dict[str, Any]:
            c1 = resource.getrusage(resource.RUSAGE_SELF)
            rss, hwm = rss_hwm_mb()
            return {"name": name, "wall_s": round(time.perf_counter() - w0, 4),
                    "cpu_s": round((c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime), 4),
                    "rss_end_mb": round(rss, 2), "hwm_mb": round(hwm, 2), "usage": since(before).model_dump(),
                    "n_examples": n_examples, "lm_engine_s": engine_s, "lm_failures": failures.model_dump()}

        try:
            out = fn()
        except BudgetReached:  # the phase the cap stopped: kept with what it spent, so the record shows where
            self.phases.append(phase(failures_since(before), None))
            raise
        engine = COUNTER.totals().engine_s - before.engine_s
        failures = failures_since(before)
        if evaluation:
            out, errored = out
            failures = failures.model_copy(update={"errored_examples": {name: errored}})
        self.phases.append(phase(failures, round(engine, 5) if self.in_process else None))
        if opt_before is not None:  # the offline LM's calls that answered the optimizer's own prompts, apart
            self.optimizer_prompts[name] = since(opt_before, self._optimizer_prompts()).model_dump()
        if self.spec_prompt_lm:
            from harness.lm.usage import prompt_share

            self.prompt_lm_phases[name] = prompt_share(before)
        return out

    @property
    def spec_prompt_lm(self) -> dict[str, Any] | None:
        return (self.spec.get("options") or {}).get("prompt_lm")

    @staticmethod
    def _optimizer_prompts():
        from harness.lm.offline import OPTIMIZER_PROMPTS

        return OPTIMIZER_PROMPTS

    # ------------------------------------------------------------------ the run

    def run(self) -> int:
        beat = threading.Thread(target=self._beat, name="harness-heartbeat", daemon=True)
        beat.start()
        status = 0
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a record
            from harness.lm.budget import BudgetReached

            if isinstance(exc, BudgetReached):  # the cap the user set: the run stops here, what it spent is kept
                self.result["budget_reached"] = str(exc) + f" (phase {self.phase})"
                print(f"stopped: {exc}", file=sys.stderr, flush=True)
            else:
                self.result["error"] = one_line(exc)
                traceback.print_exc()
                status = 1
        finally:
            self._stop.set()
            self.finish()
        return status

    def _run(self) -> None:
        spec = self.spec
        w0 = time.perf_counter()
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        if spec.get("keyless", True):  # offline, offline-http, local: nothing but loopback
            from harness.netguard import install

            install()
        import dspy

        from harness import registry
        from harness.lm.usage import COUNTER, install_failure_counting
        from harness.strategies.base import RunContext

        from harness.tasks.user import task_from_options

        task_from_options(spec.get("options") or {})  # the user's own program, if the run names one
        task = registry.get_task(spec["task"])
        strategy = registry.get_strategy(spec["strategy"])
        from harness.lm.pricing import preset

        preset(spec.get("prices") or {})
        lm = build_lm(spec, task)
        prompt_lm = build_prompt_lm(spec)
        install_failure_counting(COUNTER, where=spec.get("api_base"))
        from harness.lm.budget import from_options, install

        budget = from_options(spec.get("options") or {})
        if budget is not None:  # --max-calls / --max-spend: every counted call is admitted against the cap
            install(budget)
        dspy.configure(lm=lm)
        workdir = Path(spec["work_dir"])
        options = spec.get("options", {})
        profile = registry.get_profile(spec["profile"])
        budgets, sizes = profile.budget_profile, profile.sizes or {}  # e.g. "local": quick budgets, its own sizes
        if getattr(task, "split_rows", None) is not None:
            sizes = {}  # the user's own data: all of it, unless --n-train/--n-dev/--n-test say otherwise
        ctx = RunContext(task=task, profile=budgets, lm=lm, workdir=workdir, options=options, strategy=strategy.name,
                         trainset=task.examples("train", budgets, options.get("n_train") or sizes.get("train")),
                         devset=task.examples("dev", budgets, options.get("n_dev") or sizes.get("dev")),
                         seed=spec.get("seed", 0), prompt_lm=prompt_lm)
        testset = task.examples("test", budgets, options.get("n_test") or sizes.get("test"))
        self.result.update(n_train=len(ctx.trainset), n_dev=len(ctx.devset), n_test=len(testset),
                           metric=task.metric_name, lm_usage_start=COUNTER.usage().model_dump())
        program = task.make_program()
        if strategy.prepare is not None:
            program = strategy.prepare(ctx, program)
        self.ctx = ctx
        if spec.get("lm_workaround"):
            ctx.workaround(spec["lm_workaround"])
        shim("evaluate_float", ctx)
        patch_parallel_overrides(ctx)
        if options.get("offline_calibration"):
            ctx.extra["offline_calibrated_to"] = options["offline_calibration"].get("model")
        rss, hwm = rss_hwm_mb()
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        self.phases.append({"name": "setup", "wall_s": round(time.perf_counter() - w0, 4),
                            "cpu_s": round(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, 4),
                            "rss_end_mb": round(rss, 2), "hwm_mb": round(hwm, 2), "n_examples": None})
        self.result["setup_rss_mb"] = round(rss, 2)

        threads = spec.get("eval_threads", 1)
        if spec.get("score", True):
            self.result["score_before"] = self.measured(
                "eval_before", lambda: evaluate(program, testset, task.metric, threads, ctx.eval_lm), len(testset),
                evaluation=True)
        with inner_evaluations(ctx):
            compiled = self.measured("compile", lambda: strategy.compile(ctx, program), len(ctx.trainset))
        if spec.get("score", True) is True:  # ("before": a measurement of the bare program only)
            self.result["score_after"] = self.measured(
                "eval_after", lambda: evaluate(compiled, testset, task.metric, threads, ctx.eval_lm), len(testset),
                evaluation=True)

    def finish(self) -> None:
        from harness.lm.usage import COUNTER

        ctx = getattr(self, "ctx", None)
        if ctx is not None:
            if self.optimizer_prompts:
                ctx.extra["optimizer_prompts"] = self.optimizer_prompts  # per phase (harness.lm.brain.Brain.respond)
            if self.spec_prompt_lm:
                from harness.lm.usage import prompt_share

                given = ctx.extra.pop("prompt_lm_given_as", None) or []
                ctx.extra["prompt_lm"] = {
                    "model": self.spec_prompt_lm["model"],
                    "priced_as": COUNTER.prompt_price.model if COUNTER.prompt_price else None,
                    "given_as": given,
                    "note": None if given else f"{ctx.strategy} takes no prompt LM: every call was the task LM's",
                    **prompt_share(), "phases": self.prompt_lm_phases}
            self.result["extra"] = _jsonable(ctx.extra)
            self.result["workaround"] = "; ".join(dict.fromkeys(ctx.workarounds)) or None
            self.result["training"] = ctx.training.model_dump() if ctx.training is not None else None
            self.result["budget"] = ctx.budget.model_dump() if ctx.budget is not None else None
        totals = COUNTER.totals()
        self.result["usage"] = COUNTER.usage().model_dump()
        self.result["lm_failures"] = self._failures()
        self.result["priced_as"] = COUNTER.price.model if COUNTER.price else None
        self.result["lm_engine_s"] = round(totals.engine_s, 4) if self.in_process else None
        self.result["counters"] = self_counters()
        alloc, reserved = torch_cuda_peaks()
        self.result["torch_peak_allocated_mb"], self.result["torch_peak_reserved_mb"] = alloc, reserved
        from harness import machine, netguard

        self.result["network_attempts"] = netguard.attempts()
        self.result["software"] = machine.describe_software().model_dump()  # (this environment's DSPy release)
        atomic_write_json(self.run_dir / "result.json", self.result)


def evaluate(program, testset, metric, threads: int, lm=None) -> tuple[float, int]:
    """(score on the test split in percent, examples that errored). An example whose program or metric raises
    scores 0 and the evaluation goes on (dspy.Evaluate); it is counted as the examples the metric did not
    return for, in every thread."""
    import dspy

    scored = _CountingMetric(metric)
    evaluator = dspy.Evaluate(devset=testset, metric=scored, num_threads=threads, display_progress=False,
                              display_table=False, max_errors=len(testset) + 1, provide_traceback=False)
    with dspy.context(lm=lm) if lm is not None else contextlib.nullcontext():
        result = evaluator(program)  # (a float up to DSPy 2.6: harness.releases "evaluate_float")
        score = round(float(getattr(result, "score", result)), 4)
    return score, len(testset) - scored.returned


@contextlib.contextmanager
def inner_evaluations(ctx):
    """Count the optimizer's own evaluations while it compiles: each ``dspy.Evaluate`` call, its items, and the
    items that reached the metric (``ctx.extra["inner_evaluations"]``). An evaluation whose items all fail inside
    DSPy before they are scored gives each the failure score; when every one did (as MIPROv2's trials on DSPy 3.0.4,
    where an AttributeError was swallowed per item), the optimizer chose from zeros, and the runner says so
    (``harness.runner``'s verdict)."""
    import inspect

    import dspy

    cls = dspy.Evaluate
    real = cls.__call__
    tally = {"evaluations": 0, "items": 0, "scored": 0}
    lock = threading.Lock()

    def counted(self, *args, **kwargs):
        bound = inspect.signature(real).bind(self, *args, **kwargs)
        metric = bound.arguments.get("metric") or self.metric
        items = bound.arguments.get("devset")
        items = list(self.devset if items is None else items)
        if metric is None or not items:
            return real(self, *args, **kwargs)
        scored = _CountingMetric(metric)
        bound.arguments["metric"] = scored
        try:
            return real(*bound.args, **bound.kwargs)
        finally:
            with lock:
                tally["evaluations"] += 1
                tally["items"] += len(items)
                tally["scored"] += scored.returned

    cls.__call__ = counted
    try:
        yield
    finally:
        cls.__call__ = real
        if tally["evaluations"]:
            ctx.extra["inner_evaluations"] = tally


def unscored_evaluations(extra: dict | None) -> str | None:
    """The one-line reason when the optimizer evaluated candidates and not one item reached the metric, else None."""
    t = (extra or {}).get("inner_evaluations") or {}
    if not t.get("items") or t.get("scored"):
        return None
    n = t["evaluations"]
    return (f"none of the {t['items']:,} items of the optimizer's {n:,} evaluation{'s' if n != 1 else ''} inside DSPy "
            "reached the metric (each failed in the program or in DSPy and got the failure score): it chose from "
            "zeros, so its program is not an optimised one")


class _CountingMetric:
    """A metric that counts, thread-safely, the calls that returned."""

    def __init__(self, metric) -> None:
        self.metric, self.returned, self._lock = metric, 0, threading.Lock()
        self.__name__ = getattr(metric, "__name__", type(metric).__name__)

    def __call__(self, *args, **kwargs):
        value = self.metric(*args, **kwargs)
        with self._lock:
            self.returned += 1
        return value


def build_lm(spec: dict[str, Any], task):
    """The run's LM, as its backend (harness.lm.backend) says: the offline LM in this process, or a served one
    (the offline LM over HTTP, a local model the harness serves, a hosted model) through DSPy's own client."""
    from harness.lm.backend import backend_of

    backend = backend_of(spec.get("lm"), spec.get("api_base"))
    price_as = spec.get("price_as") or backend.default_price()
    if backend.in_process:
        from harness.lm.brain import Calibration
        from harness.lm.offline import make_offline_lm

        cal = (spec.get("options") or {}).get("offline_calibration")
        return make_offline_lm(task.oracle() if task.oracle else None, price_as=price_as,
                               calibration=Calibration.from_dict(cal) if cal else None)
    from harness.lm.real import make_real_lm

    retries = (spec.get("options") or {}).get("lm_retries")  # DSPy's num_retries (default 3), where asked
    kwargs = backend.client_kwargs() | ({} if retries is None else {"num_retries": retries})
    engine = (spec.get("options") or {}).get("lm_engine")  # harness matrix's "3.4.1:litellm": DSPy's LiteLLM path
    if engine:
        kwargs["engine"] = engine
    lm = make_real_lm(backend.model_for(task.name), api_base=spec.get("served_at") or backend.api_base,
                      price_as=price_as, **kwargs)
    if backend.simulated:  # the offline LM over HTTP: each call's rollout reaches the server, as in process
        from harness.lm.offline import tag_rollouts_over_http

        tag_rollouts_over_http()
    return lm


def build_prompt_lm(spec: dict[str, Any]):
    """The run's prompt LM (--prompt-lm; harness.lm.backend.prompt_lm_option), or None: a served model, its
    calls counted in the run's counter and kept apart there."""
    cfg = (spec.get("options") or {}).get("prompt_lm")
    if not cfg:
        return None
    from harness.lm.real import make_real_lm

    retries = (spec.get("options") or {}).get("lm_retries")
    return make_real_lm(cfg["model"], api_base=cfg.get("api_base"), price_as=cfg.get("price_as"), role="prompt",
                        **({} if retries is None else {"num_retries": retries}))


def _jsonable(value: Any) -> Any:
    """`value` as plain JSON; a NaN or an Infinity (a strategy's own figure in `extra`) becomes None, since
    no file of the harness holds one (harness.load refuses them)."""
    def finite(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, list):
            return [finite(x) for x in v]
        return v

    return finite(json.loads(json.dumps(value, default=str)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return Child(Path(argv[0])).run()


if __name__ == "__main__":
    sys.exit(main())
