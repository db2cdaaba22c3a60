"""`make bench` = pytest-benchmark over benchmarks/, one test per (strategy, task, repeat).

pytest runs in this process (pytest.main): the bench's settings reach benchmarks/conftest.py as the object
``CURRENT``, never through environment variables. pytest-benchmark's own JSON is written beside report.json
(atomically, through a temporary name) so its compare tools work.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from harness import registry
from harness.bench import BenchConfig
from harness.errors import HarnessError, Interrupted
from harness.files import OutLock, atomic_write_text, ensure_writable
from harness.redact import scrub
from harness.runner import STOP, stop_on_signals

ROOT = Path(__file__).resolve().parent.parent
CURRENT: BenchConfig | None = None  # the bench run_pytest is running, for benchmarks/conftest.py


def current_config() -> BenchConfig:
    """The bench config for benchmarks/: the one run_pytest set (a plain `pytest benchmarks/` gets the defaults:
    the standard profile into results/latest)."""
    return CURRENT if CURRENT is not None else BenchConfig(out=Path("results/latest"))


def check_lm(lm: str | None, price_as: str | None, api_base: str | None = None) -> None:
    """Refuse an unknown LM or backend, or an unpriced --price-as, in one line, before any run starts."""
    from harness.lm.backend import backend_of

    backend_of(lm, api_base)
    if price_as:
        from harness.lm.pricing import price_of

        price_of(price_as)


def run_bench(cfg: BenchConfig) -> int:
    """A bench: through pytest-benchmark one run at a time (--jobs 1), or `jobs` runs at once without it (its timer
    would time runs that share the CPUs, so no benchmark.json is written), or as Ray tasks (--executor ray, also
    without it). 0: every run ok."""
    return run_pytest(cfg) if cfg.jobs == 1 and cfg.executor == "local" else run_parallel(cfg)


def run_parallel(cfg: BenchConfig) -> int:
    from harness.bench import Bench, say

    registry.plan(cfg.profile, cfg.strategies, cfg.tasks, cfg.repeat, options=cfg.options)  # bad names: one line
    check_lm(cfg.lm, cfg.price_as, cfg.api_base)
    out = ensure_writable(cfg.out.resolve())
    with OutLock(out), stop_on_signals():
        with Bench(replace(cfg, out=out, locked=True)) as bench:
            say(f"{len(bench.runs)} runs, {cfg.jobs} at once (each its own measured process tree"
                + ("; their wall times are labelled as a parallel bench's and not gated against serial ones" if
                   cfg.jobs > 1 else "") + "; no pytest-benchmark JSON)")
            refused = bench.run_all()
            records = bench.recorded()
            bad = [f"{rid}: {records[rid].status}" for rid in bench.expected
                   if rid in records and records[rid].status != "ok"]
    for line in refused + bad:
        say(f"not ok: {line}")
    return 1 if refused or bad else 0


def run_pytest(cfg: BenchConfig) -> int:
    try:
        import pytest
        import pytest_benchmark  # noqa: F401 - the bench's plugin
    except ImportError:
        raise HarnessError("`harness bench` runs through pytest-benchmark: pip install 'dspy-resource-bench[bench]' "
                           "(make bench installs it)") from None

    registry.plan(cfg.profile, cfg.strategies, cfg.tasks, cfg.repeat, options=cfg.options)  # bad names fail here, in one line
    check_lm(cfg.lm, cfg.price_as, cfg.api_base)
    out = ensure_writable(cfg.out.resolve())
    with OutLock(out):  # refused here, in one line, if another bench holds OUT
        return _run_locked(cfg, out, pytest)


def _run_locked(cfg: BenchConfig, out: Path, pytest) -> int:
    global CURRENT
    tmp = out / ".benchmark.json.tmp"
    CURRENT = replace(cfg, out=out, locked=True)
    try:
        with stop_on_signals():
            code = pytest.main([str(ROOT / "benchmarks"), "-q", "-s", "-p", "no:cacheprovider", "--rootdir",
                                str(ROOT), f"--benchmark-json={tmp}", "--benchmark-columns=mean",
                                "--benchmark-sort=name", "--benchmark-name=short", "-W", "ignore::DeprecationWarning"])
    finally:
        CURRENT = None
    if tmp.exists():
        atomic_write_text(out / "benchmark.json", scrub(tmp.read_text()))
        tmp.unlink()
    if STOP.is_set():
        raise Interrupted()
    return int(code)
