"""A bench: many runs into one OUT folder, resumable, ending in one report.

OUT holds ``bench.json`` (what was asked), ``runs/<run_id>.json`` (one record per finished run),
``logs/``, and at the end ``report.json`` with the Markdown, CSV and plots beside it. A bench
locks OUT; an interrupted one is continued with ``resume=True`` (``RESUME=1``), which keeps every
record already written and runs only the missing ones.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import machine, registry
from harness.aggregate import build_aggregates
from harness.errors import HarnessError, Interrupted
from harness.files import OutLock, atomic_write_json, atomic_write_text
from harness.record import Calibration, Report, RunRecord, SchemaError, load_record, utcnow
from harness.runner import STOP, RunSpec, clean_stale, run_one, scrub

NOTES_OFFLINE = [
    "LM: the embedded offline LM (offline/simulated), served through dspy.LM with a custom engine. "
    "Real: the optimizer process's time, CPU, memory and disk, and the LM calls and tokens it made "
    "(counted where served, tokenizer of the price model). Not real: the LM's own latency, and the "
    "quality of its answers: scores show that an optimizer did its work, not how good it is on a real model.",
]


@dataclass
class BenchConfig:
    out: Path
    profile: str = "standard"
    strategies: list[str] | None = None
    tasks: list[str] | None = None
    lm: str | None = None
    api_base: str | None = None
    price_as: str | None = None
    repeat: int = 1
    resume: bool = False
    timeout_s: float | None = None
    max_rss_mb: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    locked: bool = False  # the caller already holds OUT's lock (harness.bench_pytest does)

    def asked(self) -> dict[str, Any]:
        """What identifies a bench for RESUME: the same question must be asked again."""
        return {"profile": self.profile, "lm": self.lm, "api_base": self.api_base, "price_as": self.price_as,
                "options": self.options}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, cfg: BenchConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.runs = registry.plan(cfg.profile, cfg.strategies, cfg.tasks, cfg.repeat)
        self.lock = OutLock(self.out) if not cfg.locked else contextlib.nullcontext()
        self.t0 = time.perf_counter()
        self.calibration: Calibration | None = None
        self.done = 0

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "Bench":
        self.lock.__enter__()
        try:
            self._prepare()
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.write_report()
        finally:
            self.lock.__exit__(*exc)

    def _prepare(self) -> None:
        clean_stale(self.out)
        state_path = self.out / "bench.json"
        ids = [registry.run_id(*r) for r in self.runs]
        if self.cfg.resume and state_path.exists():
            try:
                state = json.loads(state_path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise HarnessError(f"cannot resume: {state_path} is unreadable ({exc}); start a new bench "
                                   "without RESUME or choose another OUT") from None
            if state.get("asked") != json.loads(json.dumps(self.cfg.asked())):
                raise HarnessError(f"cannot resume into {self.out}: it holds a bench with other settings "
                                   f"({state.get('asked')}); use the same PROFILE/LM/PRICE_AS or another OUT")
            ids = list(dict.fromkeys([*state.get("expected_runs", []), *ids]))
            self.calibration = Calibration(**state["calibration"]) if state.get("calibration") else None
            say(f"resuming in {self.out}: {len(self.recorded())} of {len(ids)} runs already recorded")
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
        old = [p for p in ("runs", "logs", "report.json", "report.md", "runs.csv", "plots", "benchmark.json",
                           "bench.json", "machine.json", "claims.json", "finetune_memory.json", "scaling.json",
                           "scaling") if (self.out / p).exists()]
        if not old:
            return
        dest = self.out / "archive" / utcnow().strftime("%Y%m%dT%H%M%SZ")
        dest.mkdir(parents=True, exist_ok=True)
        for name in old:
            shutil.move(str(self.out / name), str(dest / name))
        say(f"previous results in {self.out} moved to {dest}")

    # ------------------------------------------------------------------ runs

    def spec(self, strategy: str, task: str, repeat: int) -> RunSpec:
        c = self.cfg
        return RunSpec(strategy=strategy, task=task, profile=c.profile, repeat=repeat, lm=c.lm, api_base=c.api_base,
                       price_as=c.price_as, timeout_s=c.timeout_s, max_rss_mb=c.max_rss_mb, options=dict(c.options))

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

    def run(self, strategy: str, task: str, repeat: int = 0) -> RunRecord:
        rid = registry.run_id(strategy, task, repeat)
        if self.cfg.resume and self.record_path(rid).exists():
            return load_record(self.record_path(rid))
        if STOP.is_set():
            raise Interrupted()
        n = len(self.expected)
        self.done += 1
        say(f"[{self.done}/{n}] {strategy} on {task} ({self.cfg.profile}) ...")
        rec = run_one(self.spec(strategy, task, repeat), self.out, progress=lambda m: say(f"    {m}"))
        say(f"[{self.done}/{n}] {strategy} on {task}: {summary_line(rec)}")
        return rec

    # ------------------------------------------------------------------ the report

    def report(self) -> Report:
        records = self.recorded()
        runs = [records[i] for i in self.expected if i in records]
        missing = [i for i in self.expected if i not in records]
        notes = list(NOTES_OFFLINE) if self.cfg.lm is None else [
            f"LM: {self.cfg.lm} (real). Calls and tokens counted for every call in every thread; spend priced at "
            f"{self.cfg.price_as or self.cfg.lm} from DSPy's bundled price table."]
        if missing:
            notes.insert(0, f"INCOMPLETE: {len(missing)} of {len(self.expected)} runs have no record: "
                            + ", ".join(missing))
        return Report(created_at=utcnow(), profile=self.cfg.profile, lm=self.cfg.lm or "offline/simulated",
                      priced_as=self.cfg.price_as or ("openai/gpt-4o-mini" if self.cfg.lm is None else None),
                      machine=machine.describe_machine(),
                      software=machine.describe_software(), git=machine.describe_git(),
                      calibration=self.calibration, bench_wall_s=round(time.perf_counter() - self.t0, 2),
                      expected_runs=self.expected, missing_runs=missing, complete=not missing, runs=runs,
                      aggregates=build_aggregates(runs), notes=notes)

    def write_report(self) -> Report:
        from harness.report import write_outputs

        report = self.report()
        atomic_write_text(self.out / "machine.json", report.machine.model_dump_json(indent=1) + "\n")
        atomic_write_text(self.out / "report.json", scrub(report.model_dump_json(indent=1)) + "\n")
        write_outputs(report, self.out)
        state = "complete" if report.complete else f"INCOMPLETE ({len(report.missing_runs)} runs missing)"
        say(f"report: {self.out / 'report.json'} ({len(report.runs)} runs, {state})")
        return report


def summary_line(rec: RunRecord) -> str:
    if rec.status != "ok":
        return f"{rec.status.upper()}: {rec.error}"
    score = ""
    if rec.score_before is not None and rec.score_after is not None:
        score = f", score {rec.score_before:.1f} -> {rec.score_after:.1f}"
    calls = f", {rec.lm_calls:,} calls, {(rec.input_tokens or 0) + (rec.output_tokens or 0):,} tokens" \
        if rec.lm_calls is not None else ""
    cost = f", ${rec.api_cost_usd:.4f}" if rec.api_cost_usd is not None else ""
    return f"ok in {rec.wall_s:.1f}s, peak RSS {rec.peak_rss_mb:.0f} MiB{calls}{cost}{score}"


def config_dict(cfg: BenchConfig) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
