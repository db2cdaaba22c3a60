"""`make bench` = pytest-benchmark over benchmarks/, one test per (strategy, task, repeat).

The bench's settings travel to pytest in HARNESS_BENCH_CONFIG; pytest-benchmark's own JSON is
written beside report.json (atomically, through a temporary name) so its compare tools work.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness import registry
from harness.bench import BenchConfig, say
from harness.errors import Interrupted
from harness.files import OutLock, atomic_write_text, ensure_writable
from harness.redact import scrub
from harness.runner import STOP, stop_on_signals

ROOT = Path(__file__).resolve().parent.parent
ENV = "HARNESS_BENCH_CONFIG"


def config_from_env() -> BenchConfig:
    """The bench config for benchmarks/ (set by run_pytest, or from make-style variables)."""
    raw = os.environ.get(ENV)
    if raw:
        data = json.loads(raw)
        data["out"] = Path(data["out"])
        return BenchConfig(**data)
    return BenchConfig(out=Path(os.environ.get("OUT") or "results/latest"),
                       profile=os.environ.get("PROFILE") or "standard",
                       strategies=registry.split_names(os.environ.get("STRATEGY"), "strategy"),
                       tasks=registry.split_names(os.environ.get("TASK"), "task"), lm=os.environ.get("LM") or None,
                       api_base=os.environ.get("API_BASE") or None, lm_server=os.environ.get("LM_SERVER") or None,
                       repeat=registry.parse_repeat(os.environ.get("REPEAT")),
                       resume=os.environ.get("RESUME", "") not in ("", "0"),
                       keep_failed=os.environ.get("KEEP_FAILED", "") not in ("", "0"))


def check_lm(lm: str | None, price_as: str | None, api_base: str | None = None) -> None:
    """Refuse an unknown LM or backend, or an unpriced --price-as, in one line, before any run starts."""
    from harness.lm.backend import backend_of

    backend_of(lm, api_base)
    if price_as:
        from harness.lm.pricing import price_of

        price_of(price_as)


def run_pytest(cfg: BenchConfig) -> int:
    import pytest

    registry.plan(cfg.profile, cfg.strategies, cfg.tasks, cfg.repeat)  # bad names fail here, in one line
    check_lm(cfg.lm, cfg.price_as, cfg.api_base)
    out = ensure_writable(cfg.out.resolve())
    with OutLock(out):  # refused here, in one line, if another bench holds OUT
        return _run_locked(cfg, out, pytest)


def _run_locked(cfg: BenchConfig, out: Path, pytest) -> int:
    tmp = out / ".benchmark.json.tmp"
    data = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()}
    os.environ[ENV] = json.dumps({**data, "out": str(out), "locked": True})
    with stop_on_signals():
        code = pytest.main([str(ROOT / "benchmarks"), "-q", "-s", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
                            f"--benchmark-json={tmp}", "--benchmark-columns=mean", "--benchmark-sort=name",
                            "--benchmark-name=short", "-W", "ignore::DeprecationWarning"])
    if tmp.exists():
        atomic_write_text(out / "benchmark.json", scrub(tmp.read_text()))
        tmp.unlink()
    if STOP.is_set():
        raise Interrupted()
    if code == 0:
        say(f"bench done: {out / 'report.md'}")
    return int(code)
