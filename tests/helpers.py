"""Shared helpers for the harness's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "tests.fault_plugin"


def use_plugin() -> None:
    """Make the fault plugin visible to this process and to every run's process."""
    os.environ["HARNESS_PLUGINS"] = PLUGIN
    from harness import registry

    registry._load_plugins.cache_clear()
    registry._load_plugins()


def harness(*args: str, env: dict | None = None, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """`python -m harness ARGS` in a subprocess, as a user would run it."""
    full_env = {**os.environ, "HARNESS_PLUGINS": PLUGIN, **(env or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout, **kw)
