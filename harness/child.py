"""The run's own process: build the LM, score the program, compile it, score it again.

Started by ``harness.runner`` as ``python -m harness.child RUN_DIR``. It reads ``RUN_DIR/spec.json``,
writes a heartbeat to ``RUN_DIR/progress.json`` every second (phase, calls, tokens: the runner
shows it, and keeps it if this process never finishes) and its result to ``RUN_DIR/result.json``.
Each phase is measured inside this process with the kernel's counters.
"""

from __future__ import annotations

import json
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


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


class Child:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.spec: dict[str, Any] = json.loads((run_dir / "spec.json").read_text())
        self.phase = "setup"
        self.phases: list[dict[str, Any]] = []
        self.result: dict[str, Any] = {"phases": self.phases}
        self.t0 = time.perf_counter()
        self._stop = threading.Event()

    # ------------------------------------------------------------------ heartbeat

    def _usage(self) -> dict[str, Any]:
        from harness.lm.usage import COUNTER

        return COUNTER.usage().model_dump()

    def _beat(self) -> None:
        parent = os.getppid()
        while not self._stop.wait(1.0):
            if os.getppid() != parent:  # the runner is gone (killed): do not run on as an orphan
                os._exit(3)
            try:
                atomic_write_json(self.run_dir / "progress.json",
                                  {"phase": self.phase, "elapsed_s": round(time.perf_counter() - self.t0, 1),
                                   "usage": self._usage(), "phases": self.phases})
            except Exception:  # a heartbeat must never kill the run
                pass

    # ------------------------------------------------------------------ phases

    def measured(self, name: str, fn, n_examples: int | None = None):
        from harness.lm.usage import COUNTER, since

        self.phase = name
        before, engine0 = COUNTER.usage(), COUNTER.totals().engine_s
        w0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        out = fn()
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        rss, hwm = rss_hwm_mb()
        engine = COUNTER.totals().engine_s - engine0
        self.phases.append({
            "name": name, "wall_s": round(time.perf_counter() - w0, 4),
            "cpu_s": round((c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime), 4),
            "rss_end_mb": round(rss, 2), "hwm_mb": round(hwm, 2),
            "usage": since(before).model_dump(), "n_examples": n_examples,
            "lm_engine_s": round(engine, 5) if self.spec.get("offline", True) else None,
        })
        return out

    # ------------------------------------------------------------------ the run

    def run(self) -> int:
        beat = threading.Thread(target=self._beat, name="harness-heartbeat", daemon=True)
        beat.start()
        status = 0
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - every failure becomes a record
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
        if spec.get("offline", True):
            from harness.netguard import install

            install()
        import dspy

        from harness import registry
        from harness.lm.usage import COUNTER
        from harness.strategies.base import RunContext

        task = registry.get_task(spec["task"])
        strategy = registry.get_strategy(spec["strategy"])
        lm = build_lm(spec, task)
        dspy.configure(lm=lm)
        workdir = Path(spec["work_dir"])
        options = spec.get("options", {})
        ctx = RunContext(task=task, profile=spec["profile"], lm=lm, workdir=workdir, options=options,
                         trainset=task.examples("train", spec["profile"], options.get("n_train")),
                         devset=task.examples("dev", spec["profile"], options.get("n_dev")),
                         seed=spec.get("seed", 0))
        testset = task.examples("test", spec["profile"])
        self.result.update(n_train=len(ctx.trainset), n_dev=len(ctx.devset), n_test=len(testset),
                           metric=task.metric_name, lm_usage_start=COUNTER.usage().model_dump())
        program = task.make_program()
        if strategy.prepare is not None:
            program = strategy.prepare(ctx, program)
        self.ctx = ctx
        rss, hwm = rss_hwm_mb()
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        self.phases.append({"name": "setup", "wall_s": round(time.perf_counter() - w0, 4),
                            "cpu_s": round(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, 4),
                            "rss_end_mb": round(rss, 2), "hwm_mb": round(hwm, 2), "n_examples": None})
        self.result["setup_rss_mb"] = round(rss, 2)

        threads = spec.get("eval_threads", 1)
        if spec.get("score", True):
            self.result["score_before"] = self.measured(
                "eval_before", lambda: evaluate(program, testset, task.metric, threads, ctx.eval_lm), len(testset))
        compiled = self.measured("compile", lambda: strategy.compile(ctx, program), len(ctx.trainset))
        if spec.get("score", True):
            self.result["score_after"] = self.measured(
                "eval_after", lambda: evaluate(compiled, testset, task.metric, threads, ctx.eval_lm), len(testset))

    def finish(self) -> None:
        from harness.lm.usage import COUNTER

        ctx = getattr(self, "ctx", None)
        if ctx is not None:
            self.result["extra"] = _jsonable(ctx.extra)
            self.result["workaround"] = "; ".join(dict.fromkeys(ctx.workarounds)) or None
            self.result["training"] = ctx.training.model_dump() if ctx.training is not None else None
        totals = COUNTER.totals()
        self.result["usage"] = COUNTER.usage().model_dump()
        self.result["priced_as"] = COUNTER.price.model if COUNTER.price else None
        self.result["lm_engine_s"] = round(totals.engine_s, 4) if self.spec.get("offline", True) else None
        self.result["counters"] = self_counters()
        alloc, reserved = torch_cuda_peaks()
        self.result["torch_peak_allocated_mb"], self.result["torch_peak_reserved_mb"] = alloc, reserved
        from harness import netguard

        self.result["network_attempts"] = netguard.attempts()
        atomic_write_json(self.run_dir / "result.json", self.result)


def evaluate(program, testset, metric, threads: int, lm=None) -> float:
    """Score a program on the test split, in percent; a failing example scores 0 (never aborts)."""
    import dspy

    evaluator = dspy.Evaluate(devset=testset, metric=metric, num_threads=threads, display_progress=False,
                              display_table=False, max_errors=len(testset) + 1, provide_traceback=False)
    if lm is not None:
        with dspy.context(lm=lm):
            return round(float(evaluator(program).score), 4)
    return round(float(evaluator(program).score), 4)


def build_lm(spec: dict[str, Any], task):
    """The run's LM: the offline LM (default) or the real model the user named."""
    if spec.get("offline", True):
        from harness.lm.offline import make_offline_lm

        return make_offline_lm(task.oracle() if task.oracle else None,
                               price_as=spec.get("price_as") or DEFAULT_PRICE_MODEL)
    from harness.lm.real import make_real_lm

    return make_real_lm(spec["lm"], api_base=spec.get("api_base"), price_as=spec.get("price_as"))


DEFAULT_PRICE_MODEL = "openai/gpt-4o-mini"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return Child(Path(argv[0])).run()


if __name__ == "__main__":
    sys.exit(main())
