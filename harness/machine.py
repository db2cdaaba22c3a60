"""The machine, the software and the commit a run is measured on, and a speed calibration."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import statistics
import subprocess
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from harness.record import Calibration, GitInfo, GPUInfo, MachineInfo, SoftwareInfo

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dspy", "torch", "transformers", "litellm", "peft", "sentence-transformers", "numpy", "psutil",
            "nvidia-ml-py", "pytest-benchmark", "pydantic", "tiktoken", "optuna", "gepa")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvidia_gpus() -> tuple[list[GPUInfo], str | None]:
    """GPUs from NVML, or an empty list and the reason there are none."""
    try:
        import pynvml
    except ImportError:
        return [], "no NVIDIA GPU figures: pynvml (nvidia-ml-py) is not installed"
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return [], "no NVIDIA GPU"
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else driver
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else name
            gpus.append(GPUInfo(name=name, memory_mb=pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**20, driver=driver))
        return gpus, (None if gpus else "no NVIDIA GPU")
    finally:
        pynvml.nvmlShutdown()


@lru_cache(maxsize=1)
def describe_machine() -> MachineInfo:
    import psutil

    gpus, note = nvidia_gpus()
    cores = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    cpu = _cpu_model()
    ram = psutil.virtual_memory().total / 2**20
    host = socket.gethostname()
    ident = "|".join([host, cpu, str(cores), f"{ram:.0f}", *(g.name for g in gpus)])
    return MachineInfo(
        machine_id=hashlib.sha256(ident.encode()).hexdigest()[:12], hostname=host, cpu_model=cpu,
        cpu_cores_logical=cores, cpu_cores_usable=usable, ram_mb=round(ram, 1), gpus=gpus, gpu_note=note,
        os=platform.platform(), arch=platform.machine(),
    )


@lru_cache(maxsize=1)
def describe_software() -> SoftwareInfo:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return SoftwareInfo(python=platform.python_version(), packages=versions)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@lru_cache(maxsize=1)
def describe_git() -> GitInfo:
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return GitInfo(commit=None, dirty=None, branch=None)
    status = _git("status", "--porcelain", "--untracked-files=no")
    return GitInfo(commit=commit, dirty=bool(status), branch=_git("rev-parse", "--abbrev-ref", "HEAD"))


def _workload() -> float:
    """About 0.1-0.3 s of pure-Python and numpy work, fixed forever (changing it breaks comparisons)."""
    import numpy as np

    t0 = time.perf_counter()
    acc = 0
    for i in range(300_000):
        acc = (acc * 31 + i) % 1_000_003
    d = {str(i): i for i in range(50_000)}
    acc += sum(len(k) for k in sorted(d))
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256))
    for _ in range(8):
        a = np.tanh(a @ a.T / 256.0)
    return time.perf_counter() - t0


def calibrate(repeats: int = 5) -> Calibration:
    _workload()  # warm-up
    times = [_workload() for _ in range(repeats)]
    med = statistics.median(times)
    return Calibration(
        workload="300k-step integer loop + 50k-key dict sort (Python) + 8 tanh(256x256 matmul) (numpy), 1 thread",
        seconds=round(med, 5), repeats=repeats, spread_pct=round((max(times) - min(times)) / med * 100, 2),
    )
