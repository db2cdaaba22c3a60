"""Measuring a process tree from outside (a poller) and from inside (the kernel's own counters).

Two methods, and the record says which number came from which:

* Inside each process, the kernel keeps exact high-water marks and counters: ``VmHWM`` (peak
  RSS), ``getrusage`` (CPU time, blocks written) and ``/proc/<pid>/io`` (bytes written).
  :func:`self_counters` reads them in the run's own process at its end.
* Outside, :class:`TreeSampler` polls the tree at 20 Hz: RSS and CPU for the timeline, every
  descendant's ``VmHWM`` while it lives, NVML GPU memory, and the memory cap. A poller sees
  only what exists at each tick, so it is the weaker method for peaks; it is kept for plots,
  for descendants, and for runs that never report (killed, timed out).
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import psutil

MB = 2**20
LINUX = sys.platform.startswith("linux")
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --------------------------------------------------------------------------- inside a process


def _status_kb(pid: int | str, *keys: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if k in keys:
                out[k] = float(v.split()[0])
    return out


def rss_hwm_mb() -> tuple[float, float]:
    """(current RSS, kernel high-water mark) of this process, MiB."""
    if LINUX:
        d = _status_kb("self", "VmRSS", "VmHWM")
        return d.get("VmRSS", 0.0) / 1024, d.get("VmHWM", 0.0) / 1024
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = ru / MB if sys.platform == "darwin" else ru / 1024
    return psutil.Process().memory_info().rss / MB, peak


def io_write_bytes(pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/io") as fh:
            for line in fh:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def self_counters() -> dict[str, float | None]:
    """The kernel's exact counters for this process and the descendants it has waited for."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss, hwm = rss_hwm_mb()
    scale = MB if sys.platform == "darwin" else 1024
    return {
        "rss_mb": rss,
        "hwm_mb": hwm,
        "ru_maxrss_mb": me.ru_maxrss / scale,
        "children_maxrss_mb": kids.ru_maxrss / scale,
        "cpu_s": me.ru_utime + me.ru_stime,
        "children_cpu_s": kids.ru_utime + kids.ru_stime,
        "write_bytes": io_write_bytes(),
        "children_oublock_bytes": kids.ru_oublock * 512,
    }


def torch_cuda_peaks() -> tuple[float | None, float | None]:
    """torch's peak allocated and reserved CUDA memory (MiB), if this process used CUDA."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None, None
    try:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None, None
        return torch.cuda.max_memory_allocated() / MB, torch.cuda.max_memory_reserved() / MB
    except Exception:
        return None, None


# --------------------------------------------------------------------------- outside: the poller


@dataclass
class _Proc:
    pid: int
    hwm_mb: float = 0.0
    cpu_s: float = 0.0
    write_bytes: int = 0
    alive: bool = True


@dataclass
class TreeFigures:
    """What the poller saw of one run."""

    samples: list[tuple[float, float, float, float | None]] = field(default_factory=list)  # t, rss, cpu%, gpu
    procs: dict[int, _Proc] = field(default_factory=dict)
    sampled_peak_rss_mb: float = 0.0
    sampler_cpu_s: float = 0.0
    interval_s: float = 0.05
    gpu_method: str | None = None
    gpu_device_peak_mb: float | None = None
    gpu_process_peak_mb: float | None = None
    cap_exceeded_mb: float | None = None  # tree RSS that broke the memory cap

    def descendants(self, root: int) -> list[_Proc]:
        return [p for pid, p in self.procs.items() if pid != root]


PAGE_MB = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) / MB


def _read_fast(pid: int) -> tuple[float, float]:
    """(rss MiB, cpu s) of one process from /proc/<pid>/statm and /stat (cheap: every tick)."""
    if not LINUX:
        p = psutil.Process(pid)
        t = p.cpu_times()
        return p.memory_info().rss / MB, t.user + t.system
    with open(f"/proc/{pid}/statm") as fh:
        rss = int(fh.read().split()[1]) * PAGE_MB
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return rss, (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def _read_slow(pid: int) -> tuple[float, int | None]:
    """(VmHWM MiB, write_bytes) of one process (dearer: every few ticks)."""
    if not LINUX:
        return psutil.Process(pid).memory_info().rss / MB, None
    return _status_kb(pid, "VmHWM").get("VmHWM", 0.0) / 1024, io_write_bytes(pid)


class _Tree:
    """Finds a root's descendants by reading each new /proc entry's parent once."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.parent: dict[int, int] = {}

    def pids(self) -> set[int]:
        if not LINUX:
            try:
                return {self.root} | {c.pid for c in psutil.Process(self.root).children(recursive=True)}
            except psutil.Error:
                return {self.root}
        live = {int(e.name) for e in os.scandir("/proc") if e.name.isdigit()}
        for pid in live - self.parent.keys():
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    self.parent[pid] = int(fh.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
        for pid in list(self.parent.keys() - live):
            del self.parent[pid]
        tree, frontier = {self.root}, [self.root]
        children: dict[int, list[int]] = {}
        for pid, ppid in self.parent.items():
            children.setdefault(ppid, []).append(pid)
        while frontier:
            for c in children.get(frontier.pop(), ()):
                if c not in tree:
                    tree.add(c)
                    frontier.append(c)
        return tree


class _GPU:
    """NVML device and per-process memory, or a note saying why there is none."""

    def __init__(self) -> None:
        self.handles: list = []
        self.note: str | None = None
        if LINUX and not any(name.startswith("nvidia") for name in os.listdir("/dev")):
            self.note = "no NVIDIA GPU"  # no device nodes: skip loading NVML at all
            return
        try:
            import pynvml
        except ImportError:
            self.note = "no NVIDIA GPU figures: pynvml (nvidia-ml-py) not installed"
            return
        try:
            pynvml.nvmlInit()
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:
            self.handles = []
        if not self.handles:
            self.note = "no NVIDIA GPU"
            return
        self.nvml = pynvml
        self.baseline = self.device_used()

    def device_used(self) -> float:
        return sum(self.nvml.nvmlDeviceGetMemoryInfo(h).used for h in self.handles) / MB

    def process_used(self, pids: set[int]) -> float | None:
        total, seen = 0.0, False
        for h in self.handles:
            try:
                procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(h)
            except Exception:
                return None
            for p in procs:
                if p.pid in pids and p.usedGpuMemory is not None:
                    total += p.usedGpuMemory / MB
                    seen = True
        return total if seen else None

    def close(self) -> None:
        if self.handles:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass


class TreeSampler:
    """Polls a process tree in a thread: timeline, per-process high-water marks, GPU, memory cap.

    ``on_cap`` is called once (from the sampler thread) when the tree's RSS exceeds ``max_rss_mb``.
    """

    def __init__(self, root_pid: int, interval_s: float = 0.05, max_rss_mb: float | None = None,
                 on_cap: Callable[[float], None] | None = None, discover_every: int = 2,
                 slow_every: int = 4) -> None:
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.max_rss_mb = max_rss_mb
        self.on_cap = on_cap
        self.discover_every = discover_every
        self.slow_every = slow_every
        self.fig = TreeFigures(interval_s=interval_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="harness-sampler", daemon=True)
        self._t0 = time.perf_counter()

    def start(self) -> "TreeSampler":
        self._thread.start()
        return self

    def stop(self) -> TreeFigures:
        self._stop.set()
        self._thread.join()
        return self.fig

    def _loop(self) -> None:
        gpu = _GPU()
        fig = self.fig
        fig.gpu_method = gpu.note
        if gpu.handles:
            fig.gpu_method = ("NVML sampled at the poller's rate: per-process usedGpuMemory of the tree's PIDs; "
                              "device used minus before the run where per-process figures are unavailable")
        t_cpu0 = time.thread_time()  # one-time set-up above is not counted as overhead
        tree = _Tree(self.root_pid)
        pids: set[int] = {self.root_pid}
        prev_cpu, prev_t, tick = 0.0, 0.0, 0
        try:
            while True:
                if tick % self.discover_every == 0:
                    pids = tree.pids()
                slow = tick % self.slow_every == 0
                tick += 1
                t = time.perf_counter() - self._t0
                rss_sum = 0.0
                for pid in pids:
                    try:
                        rss, cpu = _read_fast(pid)
                        if slow or pid not in fig.procs:
                            hwm, wb = _read_slow(pid)
                        else:
                            hwm, wb = 0.0, None
                    except (OSError, psutil.Error, ValueError, IndexError):
                        if pid in fig.procs:
                            fig.procs[pid].alive = False
                        continue
                    p = fig.procs.setdefault(pid, _Proc(pid))
                    p.hwm_mb, p.cpu_s = max(p.hwm_mb, hwm, rss), max(p.cpu_s, cpu)
                    p.write_bytes = max(p.write_bytes, wb or 0)
                    rss_sum += rss
                cpu_sum = sum(p.cpu_s for p in fig.procs.values())  # exited ones keep their last CPU time
                gpu_mb = None
                if gpu.handles:
                    dev = gpu.device_used() - gpu.baseline
                    fig.gpu_device_peak_mb = max(fig.gpu_device_peak_mb or 0.0, dev)
                    proc = gpu.process_used(pids)
                    if proc is not None:
                        fig.gpu_process_peak_mb = max(fig.gpu_process_peak_mb or 0.0, proc)
                    gpu_mb = proc if proc is not None else dev
                dt = t - prev_t
                pct = 100.0 * (cpu_sum - prev_cpu) / dt if dt > 0 and tick > 1 else 0.0
                prev_cpu, prev_t = cpu_sum, t
                if rss_sum > 0:
                    fig.samples.append((round(t, 3), round(rss_sum, 2), round(max(pct, 0.0), 1),
                                        None if gpu_mb is None else round(gpu_mb, 1)))
                    fig.sampled_peak_rss_mb = max(fig.sampled_peak_rss_mb, rss_sum)
                if self.max_rss_mb is not None and rss_sum > self.max_rss_mb and fig.cap_exceeded_mb is None:
                    fig.cap_exceeded_mb = rss_sum
                    if self.on_cap:
                        self.on_cap(rss_sum)
                if self._stop.wait(self.interval_s):
                    break
        finally:
            fig.sampler_cpu_s = time.thread_time() - t_cpu0
            gpu.close()


def downsample(samples: list[tuple], limit: int = 2000) -> list[tuple]:
    """At most `limit` points; each bucket keeps its highest-RSS sample so peaks survive."""
    if len(samples) <= limit:
        return samples
    step = len(samples) / limit
    out = []
    for i in range(limit):
        bucket = samples[int(i * step):int((i + 1) * step)] or [samples[-1]]
        out.append(max(bucket, key=lambda s: s[1]))
    return out
