"""Fine-tuning memory and speed as a function of model size, measured.

    python -m harness.training.memory --out DIR [--sizes cpu-1m,...] [--modes full,lora] [--steps N]
                                      [--cpu-only | --gpu-only] [--batch B] [--seq S]

Each (size, mode, device) runs in a fresh subprocess (``--worker``) that imports torch,
transformers and peft, reads its RSS (the runtime's fixed overhead, before any model exists),
builds a random-initialised Llama-style student (``harness.training.students``), and takes a few
AdamW steps on random tokens. It then reads its own peaks: the kernel's high-water mark (VmHWM and
``ru_maxrss``) on the host, and on a GPU torch's ``max_memory_allocated``/``max_memory_reserved`` and
NVML (this process's ``usedGpuMemory`` where NVML reports it, else device memory used minus before).
The parent writes ``DIR/finetune_memory.json``: the machine, the method, one entry per run, and per
mode and device a least-squares fit of peak memory against parameter count (bytes per parameter,
intercept, R^2). A run that runs out of memory is recorded as such, not raised.

This module must not import dspy: it also runs on GPU machines that have only torch, transformers,
peft, psutil and nvidia-ml-py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.files import atomic_write_text
from harness.measure import rss_hwm_mb, self_counters
from harness.training.students import CPU_BENCH_SIZES, GPU_BENCH_SIZES, LORA_DEFAULTS, SPECS

MIB = 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parents[2]
NO_GPU_NOTE = "no NVIDIA GPU: GPU sizes not measured"
# Fewer steps for the largest CPU sizes (one warm-up step is never timed).
CPU_STEP_CAP = {"cpu-120m": 3, "cpu-300m": 2}
# (device, measure) pairs that get a fit; the first per device is the headline figure.
FIT_MEASURES = {
    "cpu": ("peak_rss_minus_overhead_mb",),
    "cuda": ("torch_max_allocated_mb", "torch_max_reserved_mb", "nvml_used_mb"),
}


# --------------------------------------------------------------------------- reading memory


class NVML:
    """This process's GPU memory from NVML, or the device's used memory minus a baseline."""

    def __init__(self, index: int = 0):
        import pynvml

        self.nv = pynvml
        pynvml.nvmlInit()
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.before_mb = self.device_used_mb()

    def device_used_mb(self) -> float:
        return self.nv.nvmlDeviceGetMemoryInfo(self.handle).used / MIB

    def process_mb(self) -> float | None:
        """usedGpuMemory of this pid; None when NVML hides it (NOT_AVAILABLE, or host pids in a container)."""
        try:
            procs = self.nv.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except self.nv.NVMLError:
            return None
        mine = [p.usedGpuMemory for p in procs if p.pid == os.getpid() and p.usedGpuMemory is not None]
        return mine[0] / MIB if mine else None

    def reading(self) -> dict[str, Any]:
        used = self.device_used_mb()
        process = self.process_mb()
        return {
            "nvml_process_mb": process,
            "nvml_device_used_before_mb": round(self.before_mb, 1),
            "nvml_device_used_after_mb": round(used, 1),
            "nvml_used_mb": round(process if process is not None else used - self.before_mb, 1),
            "nvml_method": "process usedGpuMemory" if process is not None else "device used minus before",
        }


# --------------------------------------------------------------------------- one measured run (child)


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """One (size, mode, device) run in this fresh process; returns its entry."""
    t_start = time.perf_counter()
    import peft  # noqa: F401  (imported in both modes so the fixed overhead is the same)
    import torch
    import transformers  # noqa: F401

    from harness.training.students import apply_mode, param_counts, random_model

    device, spec = job["device"], SPECS[job["size"]]
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    entry: dict[str, Any] = {**job, "status": "ok", "torch_threads": torch.get_num_threads()}
    nvml = None
    if device == "cuda":  # the baseline is read before CUDA starts in this process
        try:
            nvml = NVML(job.get("gpu_index", 0))
        except Exception as exc:  # no pynvml or no driver access: torch's figures remain
            entry["nvml_error"] = f"{type(exc).__name__}: {exc}"[:200]
    rss, hwm = rss_hwm_mb()
    entry["fixed_overhead_mb"], entry["hwm_after_imports_mb"] = round(rss, 1), round(hwm, 1)
    entry["import_s"] = round(time.perf_counter() - t_start, 2)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    entry["dtype"] = str(dtype).replace("torch.", "")
    times: list[float] = []
    try:
        t0 = time.perf_counter()
        model = apply_mode(random_model(spec, device=device, dtype=dtype, seed=0), job["mode"])
        entry["build_s"] = round(time.perf_counter() - t0, 2)
        entry["total_params"], entry["trainable_params"] = param_counts(model)
        entry["rss_after_build_mb"] = round(rss_hwm_mb()[0], 1)
        if device == "cuda":
            entry["weights_allocated_mb"] = round(torch.cuda.memory_allocated() / MIB, 1)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        gen = torch.Generator(device="cpu").manual_seed(0)
        ids = torch.randint(0, spec.vocab, (job["batch"], job["seq"]), generator=gen).to(device)
        model.train()
        for _ in range(job["steps"]):
            t = time.perf_counter()
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    except (torch.OutOfMemoryError, RuntimeError) as exc:  # CPU allocators raise RuntimeError
        text = str(exc)
        if not isinstance(exc, torch.OutOfMemoryError) and "memory" not in text.lower():
            raise
        entry["status"], entry["error"] = "oom", text.splitlines()[0][:300]
    entry["steps_done"] = len(times)
    entry["step_times_s"] = [round(t, 4) for t in times]
    timed = times[1:] or times  # the first step warms up (allocations, kernels)
    entry["step_s_median"] = round(statistics.median(timed), 4) if timed else None
    entry["tokens_per_s"] = round(job["batch"] * job["seq"] / entry["step_s_median"], 1) if timed else None
    entry["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    entry["peak_rss_mb"] = round(rss_hwm_mb()[1], 1)
    entry["ru_maxrss_mb"] = round(self_counters()["ru_maxrss_mb"], 1)
    entry["peak_rss_minus_overhead_mb"] = round(entry["peak_rss_mb"] - entry["fixed_overhead_mb"], 1)
    if device == "cuda":
        entry["torch_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / MIB, 1)
        entry["torch_max_reserved_mb"] = round(torch.cuda.max_memory_reserved() / MIB, 1)
        if nvml is not None:
            entry.update(nvml.reading())
    return entry


# --------------------------------------------------------------------------- the parent


def machine_summary() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def pkg(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    summary: dict[str, Any] = {
        "cpu_model": cpu,
        "cpu_cores_logical": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_mb": None,
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "gpus": gpu_list(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {p: pkg(p) for p in ("torch", "transformers", "peft", "psutil", "nvidia-ml-py")},
    }
    try:
        import psutil

        summary["ram_mb"] = round(psutil.virtual_memory().total / MIB)
    except ImportError:
        pass
    return summary


def gpu_list() -> list[dict[str, Any]]:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver, no library: no NVIDIA GPU to measure
        return []
    out = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        name = pynvml.nvmlDeviceGetName(h)
        out.append({"index": i, "name": name.decode() if isinstance(name, bytes) else name,
                    "memory_mb": round(pynvml.nvmlDeviceGetMemoryInfo(h).total / MIB),
                    "driver": str(pynvml.nvmlSystemGetDriverVersion())})
    return out


def cuda_available() -> bool:
    """Asked in a subprocess: this parent must not start CUDA (the workers measure the device)."""
    code = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def run_worker(job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "harness.training.memory", "--worker", json.dumps(job)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=REPO_ROOT)
    except subprocess.TimeoutExpired:
        return {**job, "status": "timeout", "error": f"no result within {timeout_s:g} s"}
    wall = round(time.perf_counter() - t0, 2)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return {**json.loads(lines[-1]), "process_wall_s": wall}
    status = "killed" if proc.returncode < 0 else "failed"
    why = "killed by signal %d (-9: likely the kernel's OOM killer)" % -proc.returncode if proc.returncode < 0 \
        else (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1][:300]
    return {**job, "status": status, "error": why, "process_wall_s": wall}


def linear_fit(points: list[tuple[float, float]]) -> dict[str, Any] | None:
    """Least squares y = slope * x + intercept, with R^2; None under two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for _, y in points)
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in points)
    return {"slope": slope, "intercept": intercept, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0, "n": n}


def fits(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (device, mode, measure): MiB against parameters, reported as bytes per parameter."""
    out = []
    for device, measures in FIT_MEASURES.items():
        for mode in sorted({e["mode"] for e in entries if e["device"] == device}):
            ok = [e for e in entries if e["device"] == device and e["mode"] == mode and e["status"] == "ok"]
            for measure in measures:
                pts = [(e["total_params"], e[measure] * MIB) for e in ok if e.get(measure) is not None]
                fit = linear_fit(pts)
                if fit:
                    out.append({"device": device, "mode": mode, "measure": measure, "x": "total_params",
                                "bytes_per_param": round(fit["slope"], 3),
                                "intercept_mb": round(fit["intercept"] / MIB, 1),
                                "r2": round(fit["r2"], 5), "points": fit["n"],
                                "sizes": [e["size"] for e in ok if e.get(measure) is not None]})
    return out


def method(batch_cpu: int, seq_cpu: int, batch_gpu: int, seq_gpu: int) -> list[str]:
    lora = ", ".join(f"{k}={v}" for k, v in LORA_DEFAULTS.items())
    return [
        "Each (size, mode, device) runs in a fresh Python process; nothing else runs in it.",
        "Students are random-initialised LlamaForCausalLM configs (harness.training.students); random token ids.",
        f"CPU: fp32, batch {batch_cpu} x {seq_cpu} tokens, torch_threads intra-op threads (1 by default: with two "
        f"threads a second busy process made steps up to 10x slower on a 2-core machine). GPU: bf16 weights, "
        f"batch {batch_gpu} x {seq_gpu} tokens.",
        "Optimizer: torch AdamW (lr 1e-4, its defaults otherwise); its two moments take the weights' dtype, so "
        "full fine-tuning holds weights + gradients + 2 moments = 16 B/param in fp32 and 8 B/param in bf16 "
        "(no fp32 master copy), before activations.",
        f"LoRA: peft on all linear layers ({lora}); the base is frozen and gets no gradients or optimizer state.",
        "fixed_overhead_mb: VmRSS after importing torch, transformers and peft, before any model exists.",
        "peak_rss_mb: the kernel high-water mark VmHWM of the worker, read inside it at its end (ru_maxrss too).",
        "GPU: torch.cuda.max_memory_allocated (tensors) and max_memory_reserved (caching allocator) over the whole "
        "worker; NVML (device index 0): this pid's usedGpuMemory when NVML reports it, else device used minus "
        "used before CUDA started (read after the steps: the caching allocator keeps its peak, NVML adds the "
        "CUDA context).",
        "step_s_median: median wall time of the steps after the first (forward, backward, AdamW step).",
        "Fits: least squares of peak memory (CPU: peak_rss_mb - fixed_overhead_mb; GPU: each torch/NVML figure) "
        "against total parameters over the measured sizes of one mode and device; slope in bytes per parameter.",
        "Step times depend on other load on the machine: the 1-minute load average is recorded at the start and "
        "at the end of each worker (on a 2-core machine, a second busy process can slow 2-thread steps manyfold).",
    ]


def plan(args: argparse.Namespace, have_gpu: bool) -> list[dict[str, Any]]:
    sizes = args.sizes.split(",") if args.sizes else [*CPU_BENCH_SIZES, *GPU_BENCH_SIZES]
    unknown = [s for s in sizes if s not in SPECS]
    if unknown:
        raise SystemExit(f"unknown sizes {unknown}; known: {', '.join(SPECS)}")
    jobs = []
    for size in sizes:
        device = SPECS[size].device
        if (device == "cpu" and args.gpu_only) or (device == "cuda" and (args.cpu_only or not have_gpu)):
            continue
        for mode in args.modes.split(","):
            if device == "cpu":
                steps = min(args.steps, CPU_STEP_CAP.get(size, args.steps))
                jobs.append({"size": size, "mode": mode, "device": "cpu", "batch": args.batch, "seq": args.seq,
                             "steps": max(2, steps), "threads": args.threads})
            else:
                jobs.append({"size": size, "mode": mode, "device": "cuda", "batch": args.gpu_batch,
                             "seq": args.gpu_seq, "steps": max(2, args.steps), "gpu_index": 0})
    return jobs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.training.memory", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="folder for finetune_memory.json")
    ap.add_argument("--sizes", help="comma-separated registry sizes (default: all CPU sizes, and GPU sizes on a GPU)")
    ap.add_argument("--modes", default="full,lora")
    ap.add_argument("--steps", type=int, default=4, help="steps per run (>= 2; the first is a warm-up)")
    ap.add_argument("--batch", type=int, default=2, help="CPU batch")
    ap.add_argument("--seq", type=int, default=64, help="CPU sequence length")
    ap.add_argument("--gpu-batch", type=int, default=1)
    ap.add_argument("--gpu-seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads in CPU workers (default 1: stable under other load; 0: torch's own)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per worker")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="start no further worker after this many seconds (the rest are recorded as skipped)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--cpu-only", action="store_true")
    group.add_argument("--gpu-only", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    if args.out is None:
        ap.error("--out is required")

    t0 = time.perf_counter()
    machine = machine_summary()
    have_gpu = bool(machine["gpus"]) and not args.cpu_only and cuda_available()
    notes = [] if have_gpu or args.cpu_only else [NO_GPU_NOTE]
    for note in notes:
        print(note, flush=True)
    entries = []
    for job in plan(args, have_gpu):
        elapsed = time.perf_counter() - t0
        if args.budget_s is not None and elapsed > args.budget_s:
            entry = {**job, "status": "skipped", "error": f"time budget of {args.budget_s:g} s spent"}
        else:
            timeout = args.timeout if args.budget_s is None else max(30.0, min(args.timeout, args.budget_s - elapsed))
            entry = run_worker(job, timeout)
        entries.append(entry)
        print(summary_line(entry), flush=True)
    result = {
        "kind": "dspy-resource-bench/finetune-memory",
        "version": 1,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "notes": notes,
        "method": method(args.batch, args.seq, args.gpu_batch, args.gpu_seq),
        "entries": entries,
        "fits": fits(entries),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = atomic_write_text(args.out / "finetune_memory.json", json.dumps(result, indent=2) + "\n")
    for f in result["fits"]:
        print(f"fit {f['device']}/{f['mode']} {f['measure']}: {f['bytes_per_param']} B/param, "
              f"intercept {f['intercept_mb']} MiB, R^2 {f['r2']} ({f['points']} sizes)")
    print(f"wrote {path} in {result['wall_s']} s")
    return 0


def summary_line(e: dict[str, Any]) -> str:
    head = f"{e['size']:>9} {e['mode']:<4} {e['device']:<4} {e['status']:<7}"
    if e["status"] != "ok" and "total_params" not in e:
        return f"{head} {e.get('error', '')}"
    mem = f"peak RSS {e.get('peak_rss_mb')} MiB (overhead {e.get('fixed_overhead_mb')})"
    if e["device"] == "cuda":
        mem += f", torch alloc {e.get('torch_max_allocated_mb')} / reserved {e.get('torch_max_reserved_mb')} MiB, " \
               f"NVML {e.get('nvml_used_mb')} MiB"
    return f"{head} params {e['total_params']:,} (trainable {e['trainable_params']:,}), {mem}, " \
           f"step {e.get('step_s_median')} s"


if __name__ == "__main__":
    sys.exit(main())
