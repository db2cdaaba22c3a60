"""Run one strategy on one task in a fresh process tree, measure it, and write its record.

The child (``harness.child``) runs in its own session so the whole tree can be stopped. This
process polls the tree (``TreeSampler``), enforces the time limit and the memory cap, and turns
what the child reports and what the poller saw into one :class:`RunRecord`, written atomically.
A run that raises, hangs or is killed still gets a record with its status and one-line reason.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from harness import machine
from harness.child import unscored_evaluations
from harness.errors import HarnessError, Interrupted
from harness.files import atomic_write_text, ensure_writable
from harness.lm.backend import HOSTED, LOCAL, Backend, backend_of
from harness.lm.pricing import price_of
from harness.lm.usage import describe_failures, every_call_failed
from harness.load import first_error
from harness.measure import MB, TreeFigures, TreeSampler, downsample
from harness.record import (BudgetFigures, GPUFigures, LMFailures, LMUsage, Measurement, Phase, RunRecord, Sample,
                            SoftwareInfo, TrainingInfo, utcnow)
from harness.redact import SECRET_NAME, scrub, secret_values, url_secrets
from harness.registry import get_profile, get_strategy, get_task, run_id
from harness.tasks.user import task_from_options

ROOT = Path(__file__).resolve().parent.parent
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
    "DSPY_NOTEBOOK": "0",
}
KILL_GRACE_S = 3.0
STOP = threading.Event()  # set by a Ctrl-C/SIGTERM handler of a bench: the run in progress is stopped
CONTROL_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


@dataclass
class RunSpec:
    strategy: str
    task: str
    profile: str
    repeat: int = 0
    lm: str | None = None  # None: the offline LM
    api_base: str | None = None
    price_as: str | None = None  # None: gpt-4o-mini for the offline LM, the model itself for a real one
    timeout_s: float | None = None  # None: the profile's default
    max_rss_mb: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    score: bool | str = True  # False: no evaluation; "before": the bare program's only (harness estimate)
    python: str | None = None  # the run's interpreter (another DSPy release's environment: harness matrix); None: ours

    @property
    def backend(self) -> Backend:
        return backend_of(self.lm, self.api_base)

    @property
    def offline(self) -> bool:
        """No key and no network beyond loopback (offline, offline-http, local; and no --prompt-lm)."""
        return self.backend.keyless and not self.options.get("prompt_lm")

    @property
    def settings(self) -> dict[str, Any]:
        """This run's strategy's --set settings ({} for its defaults)."""
        return dict((self.options.get("set") or {}).get(self.strategy) or {})

    @property
    def run_id(self) -> str:
        return run_id(self.strategy, self.task, self.repeat, self.settings)


@contextlib.contextmanager
def stop_on_signals():
    """While inside: Ctrl-C and SIGTERM set STOP, so the run in progress is stopped, its tree killed and its
    work and control folders removed (nothing unscrubbed is left behind); the caller then sees Interrupted."""
    handlers = {sig: signal.signal(sig, lambda *_: STOP.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


LIMIT_UNITS = {"--timeout": ("timeout_s", "seconds"), "--max-rss": ("max_rss_mb", "MiB")}


def check_limits(timeout_s: float | None = None, max_rss_mb: float | None = None) -> None:
    """Refuse a time limit or memory cap that is not a finite number above 0, before anything runs."""
    for name, value, unit in (("--timeout", timeout_s, "seconds"), ("--max-rss", max_rss_mb, "MiB")):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise HarnessError(f"{name} must be a number of {unit} above 0, got {value!r}")


def child_env(spec: RunSpec, work_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not (spec.offline and SECRET_NAME.search(k))}
    env.update(OFFLINE_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    # Caches and configs a library writes land in the run's work folder: counted, then removed.
    for var, sub in (("DSPY_CACHEDIR", "dspy_cache"), ("MPLCONFIGDIR", "mpl"), ("HOME", "home")):
        env[var] = str(work_dir / sub)
    return env


def clean_stale(out: Path) -> list[str]:
    """Remove what runs killed with their runner left behind: OUT/.work/* (call with OUT locked) and
    control folders of runners that no longer exist."""
    removed = []
    work = Path(out) / ".work"
    for path in work.iterdir() if work.is_dir() else []:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    control = Path(CONTROL_DIR or tempfile.gettempdir())
    for path in control.glob("harness-*-*"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and not psutil_pid_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def psutil_pid_exists(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)


def missing_dependencies(strategy) -> list[str]:
    """The modules a strategy declares in `needs` that cannot be imported here."""
    import importlib.util

    return [m for m in strategy.needs if importlib.util.find_spec(m) is None]


def _kill_tree(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1][:400] if lines else "no output"


class Beside:
    """The measured runs of one bench alive at once (--jobs N): for each, the most others that ran beside it."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs
        self._lock = threading.Lock()
        self._alive: dict[int, int] = {}  # a run's token -> the most others seen alive beside it
        self._next = 0

    @contextlib.contextmanager
    def running(self):
        """While inside, this run is alive; yields a function giving the most others beside it so far."""
        with self._lock:
            token, self._next = self._next, self._next + 1
            self._alive[token] = 0
            for key in self._alive:
                self._alive[key] = max(self._alive[key], len(self._alive) - 1)
        try:
            yield lambda: self._alive[token]
        finally:
            with self._lock:
                del self._alive[token]


ALONE = Beside()  # a run that is not one of a parallel bench's


def _reap(proc, timeout: float | None) -> bool:
    """Wait up to `timeout` seconds (None: until it ends) for the child and reap it with wait4, keeping its own
    rusage (it and the descendants it waited for) as proc.rusage: exact whatever other runs end meanwhile, unlike a
    getrusage(RUSAGE_CHILDREN) delta. True once reaped."""
    deadline = None if timeout is None else time.perf_counter() + timeout
    while proc.returncode is None:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode, proc.rusage = os.waitstatus_to_exitcode(status), usage
            break
        if deadline is not None and time.perf_counter() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _wait(proc, spec: RunSpec, timeout: float, t0: float, run_dir: Path,
          progress: Callable[[str], None] | None, beat_every_s: float) -> bool:
    """Wait for the child; stop its tree at the time limit. Returns True if it timed out."""
    next_beat = t0 + beat_every_s
    while True:
        if _reap(proc, 0.2):
            return False
        if STOP.is_set():
            raise Interrupted()
        now = time.perf_counter()
        if now - t0 > timeout:
            _kill_tree(proc.pid, signal.SIGTERM)
            if not _reap(proc, KILL_GRACE_S):
                _kill_tree(proc.pid, signal.SIGKILL)
                _reap(proc, None)
            return True
        if progress and now >= next_beat:
            next_beat = now + beat_every_s
            beat = _read_json(run_dir / "progress.json") or {}
            usage = beat.get("usage", {})
            tokens = [usage.get("input_tokens", 0), usage.get("output_tokens", 0)]
            failed = (beat.get("lm_failures") or {}).get("failed_calls")
            progress(f"{spec.run_id}: {beat.get('phase', 'starting')}, {now - t0:.0f}s, "
                     f"{usage.get('lm_calls', 0):,} LM calls, "
                     + ("tokens not measured" if None in tokens else f"{sum(tokens):,} tokens")
                     + (f", {failed:,} failed" if failed else ""))


def eval_threads(backend: Backend, profile) -> int:
    """Threads of dspy.Evaluate: the offline LM's (both transports alike, so they compare), one for a local
    server (it has one slot: more threads only queue), the profile's real-LM concurrency for a hosted LM."""
    if backend.simulated:
        return profile.eval_threads
    return 1 if backend.kind == LOCAL else profile.real_lm_threads


def _prices(spec: RunSpec) -> dict[str, dict]:
    """The prices the run will price its tokens at, from this environment's DSPy table (the run's process may import
    another DSPy release: harness matrix), by model."""
    names = {spec.price_as or spec.backend.default_price(), (spec.options.get("prompt_lm") or {}).get("price_as")}
    out = {}
    for name in filter(None, names):
        with contextlib.suppress(HarnessError):
            out[name] = asdict(price_of(name))
    return out


def run_one(spec: RunSpec, out: Path, progress: Callable[[str], None] | None = None,
            beat_every_s: float = 5.0, served=None, beside: Beside = ALONE) -> RunRecord:
    """Run `spec` in a child process tree; write OUT/runs/<run_id>.json and OUT/logs/<run_id>.log. `served`: the
    server the harness started for the LM (harness.lm.backend.serve), measured during the run; `beside`: the runs of
    a parallel bench (--jobs), so that the record says how many ran beside this one."""
    task_from_options(spec.options)  # the user's own program (--program), if the run names one
    strategy, task, profile = get_strategy(spec.strategy), get_task(spec.task), get_profile(spec.profile)
    if not strategy.runs_on(task.name):
        raise ValueError(f"{strategy.name} does not run on task {task.name}")
    check_limits(spec.timeout_s, spec.max_rss_mb)
    backend = spec.backend
    if backend.started_by_harness and served is None:
        raise HarnessError(f"--lm {backend.name} needs its server: run it through a bench or `harness run`, which "
                           "start one")
    timeout = spec.timeout_s if spec.timeout_s is not None else profile.timeout_s
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    missing = missing_dependencies(strategy)
    if missing:  # nothing to run: a failed record that says what to install, and the bench goes on
        error = (f"{strategy.name} needs the Python module(s) {', '.join(missing)}, which are not installed: "
                 "run `make test` or `pip install -e .` to install the pinned stack")
        record = _record(spec, timeout, "failed", error, utcnow(), 0.0, None, TreeFigures(), None, {}, -1,
                         jobs=beside.jobs)
        atomic_write_text(out / "runs" / f"{spec.run_id}.json", record.model_dump_json(indent=1) + "\n")
        return record
    # Control files (spec, heartbeat, result) live on tmpfs where there is one, so that they do not
    # count as the run's disk writes; the strategy's own files go to a work folder on real disk.
    run_dir = Path(tempfile.mkdtemp(prefix=f"harness-{os.getpid()}-{spec.run_id}-", dir=CONTROL_DIR))
    work_dir = Path(tempfile.mkdtemp(prefix=f"{spec.run_id}-", dir=ensure_writable(out / ".work")))
    child_spec = {**asdict(spec), "lm_kind": backend.kind, "keyless": spec.offline, "work_dir": str(work_dir),
                  "served_at": served.api_base if served is not None else None, "lm_workaround": backend.workaround(),
                  "eval_threads": eval_threads(backend, profile), "prices": _prices(spec)}
    (run_dir / "spec.json").write_text(json.dumps(child_spec))
    log_path = run_dir / "child.log"
    started = utcnow()
    state: dict[str, Any] = {"oom": None}

    with open(log_path, "wb") as log, beside.running() as others:
        t0 = time.perf_counter()
        proc = subprocess.Popen([spec.python or sys.executable, "-m", "harness.child", str(run_dir)], cwd=work_dir,
                                env=child_env(spec, work_dir), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)

        def on_cap(rss_mb: float) -> None:
            state["oom"] = rss_mb
            _kill_tree(proc.pid, signal.SIGKILL)

        sampler = TreeSampler(proc.pid, max_rss_mb=spec.max_rss_mb, on_cap=on_cap).start()
        window = served.window() if served is not None else None
        try:
            timed_out = _wait(proc, spec, timeout, t0, run_dir, progress, beat_every_s)
        except BaseException:  # Ctrl-C or any failure here: leave no process behind, keep nothing half-done
            _kill_tree(proc.pid, signal.SIGKILL)
            _reap(proc, None)
            sampler.stop()
            if window is not None:
                window.close()
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.rmtree(work_dir, ignore_errors=True)
            raise
        wall = time.perf_counter() - t0
        _kill_tree(proc.pid, signal.SIGKILL)  # leave no descendant behind
        fig = sampler.stop()
        server_figures = window.close() if window is not None else None
        ran_beside = others()
    usage = getattr(proc, "rusage", None)

    result = _read_json(run_dir / "result.json")
    beat = _read_json(run_dir / "progress.json") or {}
    rc = proc.returncode
    if state["oom"] is not None:
        status = "oom"
        error = (f"memory cap exceeded: process tree RSS {state['oom']:.0f} MiB > --max-rss {spec.max_rss_mb:.0f} MiB "
                 f"(phase {beat.get('phase', 'setup')})")
    elif timed_out:
        status, error = "timeout", f"time limit of {timeout:.0f}s exceeded (phase {beat.get('phase', 'setup')})"
    elif result is not None and result.get("error"):
        status, error = "failed", result["error"]
    elif result is not None and result.get("budget_reached"):
        status, error = "budget", result["budget_reached"]
    elif rc is not None and rc < 0:
        status, error = "killed", f"killed by signal {signal.Signals(-rc).name} (phase {beat.get('phase', 'setup')})"
    elif rc != 0 or result is None:
        status, error = "failed", f"child exited with status {rc}: {_last_line(log_path)}"
    else:
        status, error = "ok", None
    status, error = _lm_verdict(status, error, result if result is not None else beat)

    try:
        record = _record(spec, timeout, status, error, started, wall, usage, fig, result, beat, proc.pid,
                         server_figures, jobs=beside.jobs, ran_beside=ran_beside)
    except ValidationError as exc:  # a NaN, an Infinity or a negative from the run: keep a record that says so
        error = f"the run reported a figure that is not a finite, non-negative number: {first_error(exc)}"
        record = _record(spec, timeout, "failed", error, started, wall, usage, fig, None, {}, proc.pid,
                         jobs=beside.jobs, ran_beside=ran_beside)
    secrets = secret_values() + url_secrets(spec.api_base) + \
        url_secrets((spec.options.get("prompt_lm") or {}).get("api_base"))
    text = scrub(record.model_dump_json(indent=1), secrets)
    record = RunRecord.model_validate_json(text)  # what is returned (and printed) is what was written
    atomic_write_text(out / "runs" / f"{spec.run_id}.json", text + "\n")
    try:
        log_text = scrub(log_path.read_text(errors="replace"), secrets)
    except OSError:
        log_text = ""
    atomic_write_text(out / "logs" / f"{spec.run_id}.log", log_text)
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(work_dir, ignore_errors=True)
    return record


def _lm_verdict(status: str, error: str | None, result: dict) -> tuple[str, str | None]:
    """A run whose every LM call failed (calls attempted, none served or none parsed), or whose optimizer's every
    evaluation failed before one item was scored, is `failed` with that reason, whatever the strategy made of it (a
    timeout, a kill or the memory cap keep their own status)."""
    failures = result.get("lm_failures")
    usage = result.get("usage") or {}
    reason = every_call_failed(usage.get("lm_calls"), LMFailures(**failures) if failures else None)
    reason = reason or unscored_evaluations(result.get("extra"))
    if reason is None or status not in ("ok", "failed"):
        return status, error
    return "failed", reason if status == "ok" else f"{reason}; then {error}"


def _record(spec: RunSpec, timeout: float, status: str, error: str | None, started, wall: float, rusage,
            fig, result: dict | None, beat: dict, root_pid: int, server=None, jobs: int = 1,
            ran_beside: int = 0) -> RunRecord:
    res = result or {}
    backend = spec.backend
    counters = res.get("counters") or {}
    descendants = fig.descendants(root_pid)
    root = fig.procs.get(root_pid)

    # CPU: the kernel's account of the child and every descendant it waited for, as wait4() returned it when the
    # runner reaped the child (that child's alone, whatever else ran); descendants nobody waited for are added from
    # the poller's last reading.
    cpu_rusage = rusage.ru_utime + rusage.ru_stime if rusage is not None else 0.0
    cpu_poller = sum(p.cpu_s for p in fig.procs.values())
    cpu = max(cpu_rusage, cpu_poller)
    cpu_method = ("wait4() rusage of the run's process as the runner reaped it (child + descendants it waited for)"
                  + ("; poller's per-process sum was larger (descendants not waited for)" if cpu_poller > cpu_rusage
                     else ""))

    # Peak RSS: the child's own kernel high-water mark, read inside it at its end (exact). With
    # descendants, add theirs (VmHWM read by the poller while they lived, or the largest waited-for
    # one from RUSAGE_CHILDREN): an upper bound, since their peaks need not coincide.
    own_hwm = counters.get("hwm_mb")
    method = "VmHWM of the run's process, read inside it at its end (kernel high-water mark)"
    if own_hwm is None:
        method = "VmHWM of the run's process, last read by the poller before it ended (run did not report)"
    elif root and root.hwm_mb > own_hwm:
        method += ", or the poller's later reading (interpreter shutdown after the report)"
    own_hwm = max(own_hwm or 0.0, root.hwm_mb if root else 0.0)
    desc_hwm = max(sum(p.hwm_mb for p in descendants), counters.get("children_maxrss_mb") or 0.0)
    hwm_sum = own_hwm + desc_hwm
    peak = own_hwm
    if desc_hwm > 0:
        peak = hwm_sum
        method += f"; plus {len(descendants) or 1} descendant(s)' VmHWM (sum: an upper bound for the tree)"

    # Disk: bytes the tree caused to be written to storage (/proc/<pid>/io write_bytes).
    own_wb = counters.get("write_bytes")
    if own_wb is None:
        own_wb = root.write_bytes if root else 0
    desc_wb = max(sum(p.write_bytes for p in descendants), counters.get("children_oublock_bytes") or 0)
    disk = (own_wb or 0) + desc_wb
    disk_method = "/proc/<pid>/io write_bytes of the run's process (read inside it) plus its descendants' (poller)"

    cpu_total = cpu if cpu > 0 else None
    overhead = round(100.0 * fig.sampler_cpu_s / cpu_total, 3) if cpu_total else None
    samples = [Sample(t=t, rss_mb=r, cpu_pct=c, gpu_mb=g) for t, r, c, g in downsample(fig.samples)]

    usage = LMUsage(**res["usage"]) if res.get("usage") else (LMUsage(**beat["usage"]) if beat.get("usage") else None)
    failures = res.get("lm_failures") or beat.get("lm_failures")
    failures = LMFailures(**failures) if failures else None
    phases = [Phase(**{**p, "usage": LMUsage(**(p.get("usage") or {}))}) for p in
              (res.get("phases") or beat.get("phases") or [])]
    gpu = GPUFigures(device_peak_mb=fig.gpu_device_peak_mb, process_peak_mb=fig.gpu_process_peak_mb,
                     torch_peak_allocated_mb=res.get("torch_peak_allocated_mb"),
                     torch_peak_reserved_mb=res.get("torch_peak_reserved_mb"))
    gpu_peak = gpu.process_peak_mb if gpu.process_peak_mb is not None else gpu.device_peak_mb
    training = TrainingInfo(**res["training"]) if res.get("training") else None
    budget = BudgetFigures.model_validate(res["budget"]) if res.get("budget") else None
    extra = dict(res.get("extra") or {})
    if spec.settings:  # the variant the run was asked for, whatever became of it (a failed run is still that variant)
        extra["settings"] = spec.settings
    if res.get("network_attempts"):
        extra["network_attempts"] = res["network_attempts"]
    return RunRecord(
        run_id=spec.run_id, strategy=spec.strategy, task=spec.task, profile=spec.profile, repeat=spec.repeat,
        status=status, error=error, workaround=res.get("workaround"), started_at=started, finished_at=utcnow(),
        timeout_s=timeout, max_rss_mb=spec.max_rss_mb,
        wall_s=round(wall, 4), jobs=jobs, ran_beside=ran_beside, cpu_s=round(cpu, 4), peak_rss_mb=round(peak, 2), setup_rss_mb=res.get("setup_rss_mb"),
        gpu_peak_mb=None if gpu_peak is None else round(gpu_peak, 1), gpu=gpu,
        disk_written_mb=round(disk / MB, 4),
        lm=backend.name, lm_kind=backend.record_kind, lm_server=server,
        priced_as=res.get("priced_as", spec.price_as), lm_calls=usage.lm_calls if usage else None,
        input_tokens=usage.input_tokens if usage else None, output_tokens=usage.output_tokens if usage else None,
        api_cost_usd=usage.api_cost_usd if usage else None, lm_engine_s=res.get("lm_engine_s"),
        lm_calls_without_usage=usage.calls_without_usage if usage else None, lm_failures=failures,
        lm_failure_summary=describe_failures(usage.lm_calls if usage else None, failures),
        score_before=res.get("score_before"), score_after=res.get("score_after"), metric=res.get("metric"),
        n_train=res.get("n_train"), n_dev=res.get("n_dev"), n_test=res.get("n_test"),
        phases=phases, training=training, budget=budget, extra=extra,
        measurement=Measurement(
            peak_rss_method=method, hwm_tree_sum_mb=round(hwm_sum, 2),
            sampled_peak_rss_mb=round(fig.sampled_peak_rss_mb, 2), processes_seen=len(fig.procs),
            sample_interval_s=fig.interval_s, samples=len(fig.samples), sampler_cpu_s=round(fig.sampler_cpu_s, 4),
            sampler_overhead_pct=overhead, cpu_method=cpu_method, disk_method=disk_method,
            gpu_method=(fig.gpu_method or "") + (" (device-wide figures include the runs beside it)"
                                                   if ran_beside and fig.gpu_method else "") or None,
            timeline=samples),
        machine=machine.describe_machine(), git=machine.describe_git(),
        software=SoftwareInfo.model_validate(res["software"]) if res.get("software") else machine.describe_software(),
    )  # (the software the run's own process imported, which another release's environment changes)


# --------------------------------------------------------------------------- a budget that holds

PREPASS_DROPS = ("max_calls", "max_spend", "lm_retries", "prompt_lm")


def spend_guard(spec: RunSpec, out: Path, say: Callable[[str], None], over_budget: bool = False) -> float | None:
    """--max-spend with a real LM: before the run's first call, an offline pre-pass of the same run (the offline
    LM, the same strategy, task, budgets and sizes, tokens at the real LM's price) projects its spend; a run
    projected over the cap is refused (HarnessError) unless `over_budget`. Returns the projection (None: no cap,
    or the offline LM, which is not billed)."""
    cap = spec.options.get("max_spend")
    if cap is None or spec.backend.simulated:
        return None
    price = spec.price_as or (spec.lm if spec.backend.kind == HOSTED else None)
    if price is None:
        raise HarnessError(f"--max-spend needs a price and {spec.lm} has none: name the model whose price applies "
                           "with --price-as (e.g. --price-as openai/gpt-4o-mini)")
    pre = replace(spec, lm=None, api_base=None, price_as=price,
                              options={k: v for k, v in spec.options.items() if k not in PREPASS_DROPS})
    prompt = spec.options.get("prompt_lm")
    prompt_price = (prompt.get("price_as") or prompt["model"]) if prompt else None
    if prompt_price is not None:
        try:
            price_of(prompt_price)
        except HarnessError:
            raise HarnessError(f"--max-spend needs a price for --prompt-lm {prompt['model']}, which has none: name "
                               "one with --prompt-price-as") from None
    rec = run_one(pre, Path(out) / "prepass")
    if rec.status != "ok" or rec.api_cost_usd is None:
        raise HarnessError(f"the offline pre-pass of {spec.run_id} ended {rec.status}, so its spend cannot be "
                           f"projected (see {Path(out) / 'prepass' / 'logs'}): {rec.error or 'no spend counted'}")
    projected, at = rec.api_cost_usd, f"{price}'s price"
    if prompt_price is not None:  # the optimizer's own prompts (the offline LM tells them apart) at the prompt LM's
        parts = (rec.extra.get("optimizer_prompts") or {}).values()
        p_in, p_out = sum(p.get("input_tokens") or 0 for p in parts), sum(p.get("output_tokens") or 0 for p in parts)
        projected = (price_of(price).cost((rec.input_tokens or 0) - p_in, (rec.output_tokens or 0) - p_out)
                     + price_of(prompt_price).cost(p_in, p_out))
        at += f", its prompts at {prompt_price}'s"
    say(f"{spec.run_id}: projected spend ${projected:.4f} at {at} (offline pre-pass: "
        f"{rec.lm_calls:,} calls, {(rec.input_tokens or 0) + (rec.output_tokens or 0):,} tokens); cap ${cap:g}")
    if projected > cap and not over_budget:
        raise HarnessError(f"{spec.run_id} is projected to spend ${projected:.4f} at {at}, over "
                           f"--max-spend ${cap:g}: refused before its first call (raise the cap, or pass "
                           "--over-budget to run anyway: it still stops at the cap)")
    return projected
