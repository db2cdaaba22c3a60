"""pytest-benchmark plumbing for `make bench`: one session-wide Bench, one test per planned run."""

from __future__ import annotations

import pytest

from harness import registry
from harness.bench import Bench
from harness.bench_pytest import current_config
from harness.runner import STOP


def pytest_generate_tests(metafunc):
    if "run_key" in metafunc.fixturenames:
        cfg = current_config()
        runs = registry.plan(cfg.profile, cfg.strategies, cfg.tasks, cfg.repeat, options=cfg.options)
        metafunc.parametrize("run_key", runs, ids=[registry.run_id(*r) for r in runs])


@pytest.fixture(scope="session")
def bench():
    with Bench(current_config()) as b:
        yield b


def pytest_runtest_teardown(item, nextitem):
    """After Ctrl-C/SIGTERM (handled as a flag, see harness.bench_pytest), stop after the current run so
    that the report and pytest-benchmark's JSON are still written."""
    if STOP.is_set():
        item.session.shouldstop = "interrupted by the user"
