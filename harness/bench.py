"""A bench: many runs into one OUT folder, resumable, ending in one report.

OUT holds ``bench.json`` (what was asked), ``runs/<run_id>.json`` (one record per finished run),
``logs/``, and at the end ``report.json`` with the Markdown, CSV and plots beside it. A bench
locks OUT; an interrupted one is continued with ``resume=True`` (``--resume``), which keeps every
record already written with status ok and runs the missing ones, the ones that did not end ok (failed,
timeout, killed, oom: unless ``keep_failed``, ``--keep-failed``) and the ones that cannot be read.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness import machine, registry
from harness.errors import HarnessError, Interrupted
from harness.executors import LocalExecutor, executor_of
from harness.files import OutLock, atomic_write_json, atomic_write_text
from harness.lm.backend import backend_of, serve
from harness.lm.local import prepare_student
from harness.load import SchemaError, first_error, load_record, read_json
from harness.record import Calibration, Report, RunRecord, utcnow, variant
from harness.report import build_report, write_outputs
from harness.redact import redact_url, scrub
from harness.runner import STOP, Beside, RunSpec, clean_stale, spend_guard
from harness.tasks.user import task_from_options

@dataclass
class BenchConfig:
    out: Path
    profile: str = "standard"
    strategies: list[str] | None = None
    tasks: list[str] | None = None
    lm: str | None = None
    api_base: str | None = None
    price_as: str | None = None
    lm_server: str | None = None  # a local model's OpenAI-compatible server command instead of llama.cpp's ({port})
    repeat: int = 1
    resume: bool = False
    keep_failed: bool = False  # with resume: keep records that are not ok instead of running them again
    timeout_s: float | None = None
    max_rss_mb: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    locked: bool = False  # the caller already holds OUT's lock (harness.bench_pytest does)
    over_budget: bool = False  # run even when the offline pre-pass projects more than --max-spend
    jobs: int = 1  # runs at once (--jobs N), each still its own measured process tree
    python: str | None = None  # the runs' interpreter: another DSPy release's environment (harness matrix)
    release: str | None = None  # the DSPy release that interpreter's environment holds (what RESUME compares)
    executor: str = "local"  # where runs execute: here, or as Ray tasks (--executor ray; harness.executors)

    @property
    def whole_suite(self) -> bool:
        """The bench `make bench` runs with nothing narrowed: every strategy and task, the offline LM, the quick or
        standard profile's own workload (no option at all). Only then do the memory bench and the scaling runs
        follow, since they measure the defaults."""
        return (self.strategies is None and self.tasks is None and self.lm is None
                and not set(self.options) - {"max_spend"}  # (a spend cap on the offline LM, which bills nothing)
                and self.profile in ("quick", "standard"))

    def asked(self) -> dict[str, Any]:
        """What identifies a bench for RESUME: the same question must be asked again."""
        options = {k: v for k, v in self.options.items() if k not in ("max_calls", "max_spend")}
        if (options.get("prompt_lm") or {}).get("api_base"):  # never a credential in bench.json
            options["prompt_lm"] = {**options["prompt_lm"], "api_base": redact_url(options["prompt_lm"]["api_base"])}
        return {"profile": self.profile, "lm": self.lm,
                "api_base": redact_url(self.api_base) if self.api_base else None,  # never a credential in bench.json
                "price_as": self.price_as,  # (a cap may change on resume: a run stopped at it can go on under more)
                "options": options, **({"lm_server": self.lm_server} if self.lm_server else {}),
                **({"dspy": self.release} if self.python else {}),  # (not its path: a checkout may move)
                **({"jobs": self.jobs} if self.jobs != 1 else {})}  # (wall times of N at once are not a serial's)


_LOG: list = []  # the open OUT/logs/bench.log of the bench in progress: what it says goes there too


_SAYING = threading.Lock()  # (--jobs: one whole line at a time from each run's thread)


def say(msg: str) -> None:
    with _SAYING:
        _say(msg)


def _say(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()
    for log in _LOG:
        with contextlib.suppress(OSError, ValueError):
            log.write(scrub(msg) + "\n")
            log.flush()


@contextlib.contextmanager
def _bench_log(path: Path):
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"--- bench started {utcnow().isoformat()}\n")
        _LOG.append(log)
        try:
            yield log
        finally:
            _LOG.remove(log)


RESULTS = Path(__file__).resolve().parent.parent / "results"  # the committed reference reports


def reference_walls(results: Path, profile: str, lm: str, here: Calibration) -> dict[tuple[str, str], float]:
    """(strategy label, task) -> wall seconds of an ok run in results/*/report.json of this profile and LM, times
    here.seconds / that report's calibration seconds (the median where several reports have one); a report
    without a calibration, or one that cannot be read, is passed over (an ETA is a guide, never an error)."""
    walls: dict[tuple[str, str], list[float]] = {}
    for path in sorted(results.glob("*/report.json")) if results.is_dir() else []:
        try:
            data = read_json(path, "reference report")
            cal = (data.get("calibration") or {}).get("seconds")
            if data.get("profile") != profile or data.get("lm") != lm or not cal:
                continue
            for run in data.get("runs") or []:
                if run.get("status") == "ok" and run.get("wall_s"):
                    label = run["strategy"] + (f"@{variant((run.get('extra') or {}).get('settings'))}"
                                               if (run.get("extra") or {}).get("settings") else "")
                    walls.setdefault((label, run["task"]), []).append(run["wall_s"] * here.seconds / cal)
        except (HarnessError, TypeError, KeyError, AttributeError):
            continue
    return {key: sorted(v)[len(v) // 2] for key, v in walls.items()}


class Bench:
    def __init__(self, cfg: BenchConfig) -> None:
        cfg.options = registry.get_profile(cfg.profile).options_for(cfg.lm, cfg.options)
        user = task_from_options(cfg.options)  # --program: the user's own program, the bench's one task
        if user is not None and not cfg.tasks:
            cfg.tasks = [user.name]
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.runs = registry.plan(cfg.profile, cfg.strategies, cfg.tasks, cfg.repeat, options=cfg.options)
        self.lock = OutLock(self.out) if not cfg.locked else contextlib.nullcontext()
        self.t0 = time.perf_counter()
        self.calibration: Calibration | None = None
        self.done = 0
        self._aside: Path | None = None
        self.backend = backend_of(cfg.lm, cfg.api_base)
        check_jobs(cfg.jobs, self.backend)
        if cfg.executor != "local" and self.backend.started_by_harness:
            raise HarnessError(f"--executor {cfg.executor} cannot use --lm {self.backend.name}: the harness serves it "
                               "on this machine, out of the cluster's reach; use the offline LM or a hosted LM")
        self.executor = LocalExecutor()
        self.beside = Beside(cfg.jobs)
        self._counting = threading.Lock()
        self.walls: list[float] = []  # wall time of each run this bench ran, for the ETA
        self._references: dict[tuple[str, str], float] | None = None  # run key -> a reference run's wall, scaled
        self.served = None  # the LM server this bench started (offline-http, local), while it runs
        self._serving = contextlib.ExitStack()
        self._logging = contextlib.ExitStack()

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "Bench":
        self.lock.__enter__()
        try:
            self._prepare()  # (a new bench first moves an old OUT's logs to OUT/archive/)
            (self.out / "logs").mkdir(parents=True, exist_ok=True)
            self._logging.enter_context(_bench_log(self.out / "logs" / "bench.log"))
            prepare_student(self.cfg.options, say)
            self.served = self._serving.enter_context(serve(self.backend, self.out, self.cfg.price_as,
                                                            self.cfg.lm_server, say))
            if self.cfg.executor != "local":
                self.executor = executor_of(self.cfg.executor)
                self._serving.callback(self.executor.close)
                say(f"runs go to {self.executor.cluster} as Ray tasks, {self.beside.jobs} at once"
                    + (" (--jobs N for more)" if self.beside.jobs == 1 else ""))
        except BaseException:
            self._serving.close()
            self._logging.close()
            self.lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._serving.close()  # the LM server stops first, whatever happened
            self.served = None
            self.write_report()
        finally:
            self._logging.close()
            self.lock.__exit__(*exc)

    def _prepare(self) -> None:
        clean_stale(self.out)
        state_path = self.out / "bench.json"
        ids = [self.spec(*r).run_id for r in self.runs]
        if self.cfg.resume and state_path.exists():
            try:
                state = read_json(state_path, "bench state")
            except SchemaError as exc:
                raise HarnessError(f"cannot resume: {exc}; start a new bench without --resume or choose another "
                                   "OUT") from None
            if state.get("asked") != json.loads(json.dumps(self.cfg.asked())):
                raise HarnessError(f"cannot resume into {self.out}: it holds a bench with other settings "
                                   f"({state.get('asked')}); use the same PROFILE/LM/PRICE_AS or another OUT")
            ids = list(dict.fromkeys([*state.get("expected_runs", []), *ids]))
            try:
                self.calibration = Calibration.model_validate(state["calibration"]) if state.get("calibration") else None
            except ValidationError as exc:
                raise HarnessError(f"cannot resume: {state_path} calibration: {first_error(exc)}; start a new bench "
                                   "without --resume or choose another OUT") from None
            self._say_resume(ids)
        elif not self.cfg.resume:
            self._archive_previous()
        if self.calibration is None:
            self.calibration = machine.calibrate()
            say(f"calibration: {self.calibration.seconds * 1000:.1f} ms per workload "
                f"(spread {self.calibration.spread_pct:.1f}%)")
        self.expected = ids
        atomic_write_json(state_path, {"asked": self.cfg.asked(), "expected_runs": ids,
                                       "calibration": self.calibration.model_dump(),
                                       "started_at": utcnow().isoformat()})

    def _archive_previous(self) -> None:
        """A new bench into a used OUT keeps the old results under OUT/archive/<time>/, never mixed."""
        old = [p for p in ("runs", "logs", "report.json", "report.md", "report.html", "runs.csv", "plots",
                           "benchmark.json", "bench.json", "machine.json", "claims.json", "finetune_memory.json",
                           "scaling.json", "scaling", "confirm", "prepass") if (self.out / p).exists()]
        if not old:
            return
        dest = self.out / "archive" / utcnow().strftime("%Y%m%dT%H%M%SZ")
        dest.mkdir(parents=True, exist_ok=True)
        for name in old:
            shutil.move(str(self.out / name), str(dest / name))
        say(f"previous results in {self.out} moved to {dest}")

    # ------------------------------------------------------------------ runs

    def spec(self, strategy: str, task: str, repeat: int) -> RunSpec:
        """The run of `strategy` (a strategy's name, or a budget variant's label: registry.split_variant)."""
        c = self.cfg
        name, settings = registry.split_variant(strategy)
        options = dict(c.options)
        if settings:
            options["set"] = {**(options.get("set") or {}), name: settings}
        return RunSpec(strategy=name, task=task, profile=c.profile, repeat=repeat, lm=c.lm, api_base=c.api_base,
                       price_as=c.price_as, timeout_s=c.timeout_s, max_rss_mb=c.max_rss_mb, options=options,
                       python=c.python)

    def record_path(self, rid: str) -> Path:
        return self.out / "runs" / f"{rid}.json"

    def recorded(self) -> dict[str, RunRecord]:
        records = {}
        for path in sorted((self.out / "runs").glob("*.json")) if (self.out / "runs").is_dir() else []:
            try:
                rec = load_record(path)
            except SchemaError as exc:
                say(f"warning: skipping {path.name}: {exc}")
                continue
            records[rec.run_id] = rec
        return records

    def kept(self, rid: str) -> RunRecord | None:
        """The record RESUME keeps for `rid`: one that loads and is ok (or any status with keep_failed)."""
        if not self.cfg.resume or not self.record_path(rid).exists():
            return None
        try:
            rec = load_record(self.record_path(rid))
        except SchemaError:
            return None  # unreadable: run it again (the bench said so when it resumed)
        return rec if rec.status == "ok" or self.cfg.keep_failed else None

    def _set_aside(self, rid: str) -> None:
        """Before a run replaces a record RESUME did not keep, move that record and its log to
        OUT/archive/resume-<time>/: nothing written is lost."""
        olds = [p for p in (self.record_path(rid), self.out / "logs" / f"{rid}.log") if p.exists()]
        if not self.cfg.resume or not olds:
            return
        if self._aside is None:
            self._aside = self.out / "archive" / f"resume-{utcnow().strftime('%Y%m%dT%H%M%SZ')}"
        for path in olds:
            dest = self._aside / path.parent.name / path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(dest))

    def _say_resume(self, ids: list[str]) -> None:
        kept = [i for i in ids if self.kept(i) is not None]
        say(f"resuming in {self.out}: {len(kept)} of {len(ids)} runs already recorded and kept")
        for rid in ids:
            path = self.record_path(rid)
            if rid in kept or not path.exists():
                continue
            try:
                rec = load_record(path)
                say(f"    {rid}: recorded as {rec.status} ({rec.error or 'no reason'}): running it again"
                    + ("" if self.cfg.keep_failed else " (--keep-failed, make bench KEEP_FAILED=1, keeps it)"))
            except SchemaError as exc:
                say(f"    {rid}: its record cannot be used ({exc}): running it again")

    def run(self, strategy: str, task: str, repeat: int = 0) -> RunRecord:
        rid = self.spec(strategy, task, repeat).run_id
        kept = self.kept(rid)
        if kept is not None:
            return kept
        if STOP.is_set():
            raise Interrupted()
        n = len(self.expected)
        with self._counting:
            self.done += 1
            done = self.done
            eta = self._eta(n)
        say(f"{_clock()} [{done}/{n}] {strategy} on {task} ({self.cfg.profile}) ...{eta}")
        spec = self.spec(strategy, task, repeat)
        spend_guard(spec, self.out, lambda m: say(f"    {m}"), over_budget=self.cfg.over_budget)  # (refused: kept)
        self._set_aside(rid)
        rec = self.executor.run(spec, self.out, progress=lambda m: say(f"    {m}"), served=self.served,
                                beside=self.beside)
        with self._counting:
            self.walls.append(rec.wall_s)
        say(f"{_clock()} [{done}/{n}] {strategy} on {task}: {summary_line(rec)}")
        busy = contention_warning(rec)
        if busy:
            say(f"    warning: {busy}")
        return rec

    def run_all(self) -> list[str]:
        """Every planned run not kept, `jobs` at a time (each its own measured process tree, as in a serial bench);
        returns one line for each run that could not start (refused by --max-spend, a bad setting), the others having
        their records. Ctrl-C (STOP) stops the runs in progress and raises Interrupted once they are cleaned up."""
        todo = [r for r in self.runs if self.kept(self.spec(*r).run_id) is None]
        refused: list[str] = []
        with ThreadPoolExecutor(max_workers=self.cfg.jobs, thread_name_prefix="run") as pool:
            futures = {pool.submit(self.run, *r): r for r in todo}
            interrupted = False
            for future in as_completed(futures):
                try:
                    future.result()
                except Interrupted:
                    interrupted = True
                except HarnessError as exc:
                    refused.append(f"{registry.run_id(*futures[future])}: {exc}")
                    say(f"    refused: {refused[-1]}")
        if interrupted or STOP.is_set():
            raise Interrupted()
        return refused

    def references(self) -> dict[tuple[str, str], float]:
        """(strategy label, task) -> the wall time of an ok run of it in a committed reference report
        (results/*/report.json) of the same profile and LM, scaled by this machine's calibration over that report's
        (the same fixed CPU workload timed on both machines); {} before this bench's calibration, and for a
        workload other than the profile's (split sizes of its own, the user's program)."""
        if any(self.cfg.options.get(k) is not None for k in ("n_train", "n_dev", "n_test", "program")):
            return {}  # (another workload than the reference runs': the bench's own mean)
        if self._references is None and self.calibration is not None:
            self._references = reference_walls(RESULTS, self.cfg.profile, self.backend.name, self.calibration)
        return self._references or {}

    def _eta(self, n: int) -> str:
        """Elapsed time, and an ETA: each run still to come at its reference run's wall time scaled to this
        machine (references()), the others at the mean wall time of this bench's runs so far."""
        elapsed = time.perf_counter() - self.t0
        text = f" elapsed {_hms(elapsed)}"
        left = self.runs[max(len(self.runs) - (n - self.done + 1), 0):]  # this one and the runs after it
        ref = self.references()
        known = [ref[(label, task)] for label, task, _ in left if (label, task) in ref]
        k = len(left) - len(known)
        if k and not self.walls:
            return text + (f", ETA over {_hms(sum(known))} ({len(known)} of {len(left)} runs from reference runs; "
                           "the rest after the first run)" if known else "")
        mean = sum(self.walls) / len(self.walls) if self.walls else 0.0
        jobs = self.cfg.jobs
        at = f", {jobs} at once" if jobs > 1 else ""  # (the sum over `jobs` lanes: a guide, runs differ in length)
        if not known:
            return text + (f", ETA {_hms(k * mean / jobs)} ({k} run{'s' if k != 1 else ''} at this bench's mean "
                           f"{_hms(mean)}{at})")
        how = "from reference runs scaled to this machine" + (f", {k} at this bench's mean {_hms(mean)}" if k else "")
        return text + (f", ETA {_hms((sum(known) + k * mean) / jobs)} ({len(left)} run{'s' if len(left) != 1 else ''}: "
                       f"{how}{at})")

    # ------------------------------------------------------------------ the report

    def report(self) -> Report:
        records = self.recorded()
        runs = [records[i] for i in self.expected if i in records]
        # (runs in another release's environment: the software their own processes imported)
        software = runs[0].software if self.cfg.python and runs else machine.describe_software()
        return build_report(runs, self.expected,
                            profile=self.cfg.profile, lm=self.backend.name,
                            priced_as=self.cfg.price_as or self.backend.default_price(),
                            machine=machine.describe_machine(), software=software,
                            git=machine.describe_git(), calibration=self.calibration,
                            bench_wall_s=round(time.perf_counter() - self.t0, 2))

    def write_report(self) -> Report:
        report = self.report()
        atomic_write_text(self.out / "machine.json", report.machine.model_dump_json(indent=1) + "\n")
        atomic_write_text(self.out / "report.json", scrub(report.model_dump_json(indent=1)) + "\n")
        write_outputs(report, self.out)
        state = "complete" if report.complete else f"INCOMPLETE ({len(report.missing_runs)} runs missing)"
        say(f"report: {self.out / 'report.json'} ({len(report.runs)} runs, {state})")
        return report


def check_jobs(jobs: int, backend) -> None:
    """Refuse a --jobs that is not a whole number from 1, or N > 1 with an LM server the harness starts itself (it
    answers one request at a time and each run's figures are read off it in that run's window)."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise HarnessError(f"--jobs must be a whole number of runs at once, 1 or more, got {jobs!r}")
    if jobs > 1 and backend.started_by_harness:
        raise HarnessError(f"--jobs {jobs} cannot share --lm {backend.name}: the server the harness starts for it "
                           "serves one request at a time and is measured run by run; use --jobs 1 with it, or "
                           "--jobs with the in-process offline LM or a hosted LM")


CONTENDED = 2.5  # an in-process offline run's wall time this many times its CPU time: the machine was busy


def contention_warning(rec: RunRecord) -> str | None:
    """A run whose wall time is far above its CPU time although nothing it did waits (the offline LM in-process,
    no weights trained): something else held the CPUs, so its times are not this machine's."""
    if rec.status != "ok" or rec.lm_kind != "offline" or rec.training is not None or rec.cpu_s <= 0.5:
        return None
    ratio = rec.wall_s / rec.cpu_s
    if ratio < CONTENDED:
        return None
    return (f"{rec.run_id}: wall time {rec.wall_s:.1f}s is {ratio:.1f}x its CPU time ({rec.cpu_s:.1f}s): the machine "
            "was busy (contended), so its times overstate this machine's")


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def summary_line(rec: RunRecord) -> str:
    """One line per run: status, time, memory, calls, tokens ("not measured" when the server gave no usage),
    spend, score, and the LM calls that failed and examples that errored (`lm_failure_summary`)."""
    if rec.status == "budget":
        tokens = ("" if rec.input_tokens is None or rec.output_tokens is None
                  else f", {rec.input_tokens + rec.output_tokens:,} tokens")
        cost = f", ${rec.api_cost_usd:.4f}" if rec.api_cost_usd is not None else ""
        return f"BUDGET: stopped after {rec.wall_s:.1f}s: {rec.error}; spent {rec.lm_calls or 0:,} calls{tokens}{cost}"
    if rec.status != "ok":
        said = rec.lm_failure_summary and not (rec.error or "").startswith("every LM call failed")
        return f"{rec.status.upper()}: {rec.error}" + (f"; {rec.lm_failure_summary}" if said else "")
    score = ""
    if rec.score_before is not None and rec.score_after is not None:
        score = f", score {rec.score_before:.1f} -> {rec.score_after:.1f}"
    tokens = "tokens not measured" if rec.input_tokens is None or rec.output_tokens is None else \
        f"{rec.input_tokens + rec.output_tokens:,} tokens"
    calls = f", {rec.lm_calls:,} calls, {tokens}" if rec.lm_calls is not None else ""
    cost = f", ${rec.api_cost_usd:.4f}" if rec.api_cost_usd is not None else ""
    failed = f", {rec.lm_failure_summary}" if rec.lm_failure_summary else ""
    return f"ok in {rec.wall_s:.1f}s, peak RSS {rec.peak_rss_mb:.0f} MiB{calls}{cost}{score}{failed}"


def config_dict(cfg: BenchConfig) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
