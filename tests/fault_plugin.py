"""Strategies that misbehave on purpose, and a tiny task, for the harness's own tests.

Loaded with HARNESS_PLUGINS=tests.fault_plugin (the runner passes it on to the run's process).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

from harness.measure import rss_hwm_mb
from harness.registry import add_strategy, add_task
from harness.strategies.base import RunContext, Strategy
from harness.tasks.registry import TASKS

MB = 2**20
_classify = next(t for t in TASKS if t.name == "classify")


def _hold(mb: int) -> bytes:
    return b"\x01" * (mb * MB)  # bytes multiplication touches every page: it is resident


def burst(ctx: RunContext, program):
    """Hold a known block for about 100 ms, then free it."""
    mb = int(ctx.options.get("mb", 300))
    ctx.extra["rss_before_mb"] = rss_hwm_mb()[0]
    block = _hold(mb)
    time.sleep(0.1)
    ctx.extra["rss_during_mb"] = rss_hwm_mb()[0]
    del block
    return program


def tree(ctx: RunContext, program):
    """Hold 100 MB here while a second process holds 200 MB and burns CPU for about 0.6 s."""
    here = _hold(100)
    code = ("import time; b = b'\\x01' * (200 * 2**20); t = time.process_time()\n"
            "while time.process_time() - t < 0.6: pass\ntime.sleep(0.3)")
    subprocess.run([sys.executable, "-c", code], check=True)
    del here
    return program


def raise_(ctx: RunContext, program):
    raise ValueError("boom from a test strategy\nsecond line that must not reach the record")


def hang(ctx: RunContext, program):
    while True:
        time.sleep(1)


def alloc(ctx: RunContext, program):
    """Grow by 50 MB every 50 ms until killed (or until `mb` is reached)."""
    blocks = []
    for _ in range(int(ctx.options.get("mb", 4000)) // 50):
        blocks.append(_hold(50))
        time.sleep(0.05)
    return program


def disk(ctx: RunContext, program):
    with open(ctx.workdir / "blob.bin", "wb") as fh:
        fh.write(os.urandom(int(ctx.options.get("mb", 20)) * MB))
        fh.flush()
        os.fsync(fh.fileno())
    return program


def network(ctx: RunContext, program):
    import socket

    try:
        socket.create_connection(("203.0.113.7", 80), timeout=5)
    except OSError as exc:
        ctx.extra["network_error"] = str(exc)
    return program


def sleepy(ctx: RunContext, program):
    time.sleep(float(ctx.settings.get("sleep", ctx.options.get("sleep", 1.0))))
    return program


def burn(ctx: RunContext, program):
    """Spend `cpu` seconds (default 2) of this process's CPU time, busy."""
    t = time.process_time()
    while time.process_time() - t < float(ctx.settings.get("cpu", 2.0)):
        pass
    return program


def echo_env(ctx: RunContext, program):
    """Print every environment value (as a careless strategy might), then fail quoting one."""
    for k, v in sorted(os.environ.items()):
        print(f"{k}={v}")
    key = os.environ.get("OPENAI_API_KEY", "")
    raise RuntimeError(f"provider refused key {key}")


def nan_extra(ctx: RunContext, program):
    """Report figures of its own that are not numbers (as a diverged optimizer might)."""
    ctx.extra["best_score"] = float("nan")
    ctx.extra["curve"] = [1.0, float("inf")]
    return program


def nan_metric(example, pred, trace=None) -> float:
    return float("nan")


def _evaluate(ctx: RunContext, program) -> None:
    import dspy

    dspy.Evaluate(devset=list(ctx.devset), metric=ctx.task.metric, num_threads=1, display_progress=False)(program)


def blind_eval(ctx: RunContext, program):
    """Evaluate a candidate whose every item fails inside DSPy before the metric (as DSPy 3.0.4's parallelizer did
    to MIPROv2's trials), then keep the program: an optimizer that chose from zeros."""
    import dspy

    class Broken(dspy.Module):
        def forward(self, **kwargs):
            raise AttributeError("'ContextVar' object has no attribute 'overrides'")

    _evaluate(ctx, Broken())
    return program


def eval_once(ctx: RunContext, program):
    """Evaluate the program itself once on the dev split: every item reaches the metric."""
    _evaluate(ctx, program)
    return program


for name, fn in [("_nan_extra", nan_extra), ("_burst", burst), ("_tree", tree), ("_raise", raise_), ("_hang", hang), ("_alloc", alloc),
                 ("_disk", disk), ("_network", network), ("_sleepy", sleepy), ("_echo_env", echo_env),
                 ("_burn", burn), ("_blind_eval", blind_eval), ("_eval_once", eval_once)]:
    add_strategy(Strategy(name, "prompt", f"test strategy {name}", fn, tasks=("_toy", "_toy_nan")))

add_strategy(Strategy("_needs_missing", "prompt", "test strategy needing an absent module", sleepy, tasks=("_toy",),
                      needs=("a_module_that_is_not_installed",)))

TINY = {"train": 4, "dev": 2, "test": 2}
add_task(dataclasses.replace(_classify, name="_toy", data_name="classify", summary="a slice of classify for tests",
                             sizes={"quick": TINY, "standard": TINY}))
add_task(dataclasses.replace(_classify, name="_toy_nan", data_name="classify", metric=nan_metric,
                             summary="_toy with a metric that returns NaN", sizes={"quick": TINY, "standard": TINY}))
