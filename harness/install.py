"""Optional parts installed into the harness's own environment on first use (never by `make test`'s default set)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Callable

from harness.errors import HarnessError


def pip_install(args: list[str], say: Callable[[str], None], what: str, hint: str) -> None:
    """`pip install ARGS` into this environment, or a one-line HarnessError naming `what`, pip's last line and `hint`."""
    say(f"installing {what} into {sys.prefix} (first use only) ...")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        last = next((ln for ln in reversed((done.stderr or done.stdout).splitlines()) if ln.strip()), "no output")
        raise HarnessError(f"could not install {what} (pip exit {done.returncode}): {last.strip()[:300]}; {hint}")
    importlib.invalidate_caches()
