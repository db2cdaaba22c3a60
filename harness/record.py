"""The run record and the report: one typed, versioned model that every later step reads.

A *run* is one strategy compiled on one task under one profile, in its own process.
Its :class:`RunRecord` is written by the runner (``harness.runner``) and read by the
report, the claims, ``compare`` and ``check``. A :class:`Report` gathers the records of
one bench with the machine, the software and the git commit they ran on.

Every field says its unit and how it was measured. ``None`` always means "not measured
here" (for example GPU fields on a machine without an NVIDIA GPU), never zero.

Versioning: ``SCHEMA_VERSION`` rises whenever a field changes meaning or is removed.
``load_report`` migrates older reports and refuses newer ones with a clear error.
History: 1 -> 2 added ``Report.aggregates`` (repeats folded into median, min, max, n).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 2
REPORT_KIND = "dspy-resource-bench/report"

Status = Literal["ok", "failed", "timeout", "killed", "oom"]


class SchemaError(ValueError):
    """A file is not a report or run record this version of the harness can read."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


# --------------------------------------------------------------------------- machine


class GPUInfo(_Model):
    name: str = Field(description="GPU model as NVML reports it.")
    memory_mb: float = Field(description="Total device memory, MiB (NVML).")
    driver: str | None = Field(None, description="NVIDIA driver version.")


class MachineInfo(_Model):
    """The system under test, MLPerf-style: what a reader needs to compare two machines."""

    machine_id: str = Field(description="Short stable hash of hostname, CPU model, cores, RAM and GPUs.")
    hostname: str = Field(description="Host name (for telling machines apart; not an address).")
    cpu_model: str = Field(description="CPU model name from /proc/cpuinfo or platform.")
    cpu_cores_logical: int = Field(description="Logical CPUs the OS reports (os.cpu_count).")
    cpu_cores_usable: int = Field(description="CPUs this process may run on (sched_getaffinity).")
    ram_mb: float = Field(description="Total system RAM, MiB (psutil.virtual_memory).")
    gpus: list[GPUInfo] = Field(default_factory=list, description="NVIDIA GPUs seen by NVML; empty if none.")
    gpu_note: str | None = Field(None, description='Why there are no GPU figures, e.g. "no NVIDIA GPU".')
    os: str = Field(description="platform.platform().")
    arch: str = Field(description="platform.machine().")


class SoftwareInfo(_Model):
    python: str = Field(description="Python version.")
    packages: dict[str, str | None] = Field(
        description="Exact installed versions (importlib.metadata) of dspy, torch, transformers, litellm, "
        "peft, sentence-transformers, numpy, psutil, nvidia-ml-py, pytest-benchmark; None if absent."
    )


class GitInfo(_Model):
    commit: str | None = Field(description="HEAD commit of the harness checkout; None outside git.")
    dirty: bool | None = Field(description="True if tracked files differ from HEAD.")
    branch: str | None = Field(None, description="Current branch, if any.")


# --------------------------------------------------------------------------- run parts


class LMUsage(_Model):
    """Calls and tokens counted where the calls were served, so threads lose nothing."""

    lm_calls: int = Field(0, description="Completions served (one per engine call; n>1 counts n).")
    input_tokens: int = Field(0, description="Prompt tokens of all served calls.")
    output_tokens: int = Field(0, description="Completion tokens of all served calls.")
    api_cost_usd: float | None = Field(
        None, description="input_tokens and output_tokens priced at `priced_as` (USD); None if unpriced."
    )

    def __add__(self, other: "LMUsage") -> "LMUsage":
        cost = None
        if self.api_cost_usd is not None or other.api_cost_usd is not None:
            cost = (self.api_cost_usd or 0.0) + (other.api_cost_usd or 0.0)
        return LMUsage(
            lm_calls=self.lm_calls + other.lm_calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            api_cost_usd=cost,
        )


class Phase(_Model):
    """One measured step inside the child: baseline evaluation, compile, evaluation after."""

    name: str = Field(description='"setup", "eval_before", "compile" or "eval_after".')
    wall_s: float = Field(description="Wall time of the phase, seconds (time.perf_counter).")
    cpu_s: float = Field(description="CPU time (user+sys) of the child process in the phase, seconds.")
    rss_end_mb: float = Field(description="Resident set size at the phase's end, MiB (VmRSS).")
    hwm_mb: float = Field(description="Kernel high-water mark (VmHWM) at the phase's end, MiB.")
    usage: LMUsage = Field(default_factory=LMUsage, description="LM calls and tokens served in the phase.")
    lm_engine_s: float | None = Field(
        None, description="CPU time the offline LM spent serving the phase's calls (thread CPU time), seconds."
    )
    n_examples: int | None = Field(None, description="Examples the phase evaluated or trained on, if any.")


class Sample(_Model):
    """One point of the poller's timeline (the weaker method for peaks; kept for plots)."""

    t: float = Field(description="Seconds since the child started.")
    rss_mb: float = Field(description="RSS summed over the process tree, MiB.")
    cpu_pct: float = Field(description="CPU use of the tree since the previous sample, % of one core.")
    gpu_mb: float | None = Field(None, description="GPU memory of the tree (NVML), MiB; None without a GPU.")


class Measurement(_Model):
    """How the host resources were measured, and what the sampler itself cost."""

    peak_rss_method: str = Field(description="How `peak_rss_mb` was obtained.")
    hwm_tree_sum_mb: float | None = Field(
        None, description="Sum of the VmHWM of every process seen in the tree, MiB: an upper bound for the tree."
    )
    sampled_peak_rss_mb: float | None = Field(
        None, description="Highest RSS sum over the tree seen by the poller, MiB: a lower bound."
    )
    processes_seen: int = Field(0, description="Processes seen in the run's tree (child included).")
    sample_interval_s: float = Field(description="Poller interval, seconds.")
    samples: int = Field(0, description="Samples taken.")
    sampler_cpu_s: float = Field(0.0, description="CPU time of the sampler thread (time.thread_time), seconds.")
    sampler_overhead_pct: float | None = Field(
        None, description="sampler_cpu_s as a share of the run's cpu_s, percent."
    )
    cpu_method: str = Field(description="How `cpu_s` was obtained.")
    disk_method: str = Field(description="How `disk_written_mb` was obtained.")
    gpu_method: str | None = Field(None, description="How the GPU fields were obtained, or why they are null.")
    timeline: list[Sample] = Field(default_factory=list, description="Poller timeline, at most ~2,000 points.")


class GPUFigures(_Model):
    device_peak_mb: float | None = Field(
        None, description="Peak device memory used during the run minus before it, MiB (NVML, sampled)."
    )
    process_peak_mb: float | None = Field(
        None, description="Peak GPU memory of the run's processes, MiB (NVML per-process, sampled)."
    )
    torch_peak_allocated_mb: float | None = Field(
        None, description="torch.cuda.max_memory_allocated in the child, MiB (tensors only)."
    )
    torch_peak_reserved_mb: float | None = Field(
        None, description="torch.cuda.max_memory_reserved in the child, MiB (caching allocator)."
    )


class TrainingInfo(_Model):
    """Figures of strategies that change model weights (BootstrapFinetune, GRPO, BetterTogether)."""

    student: str = Field(description="Student model name (registry entry or local path).")
    mode: str = Field(description='"full" or "lora".')
    device: str = Field(description='"cpu" or "cuda".')
    dtype: str = Field(description="Training dtype.")
    total_params: int = Field(description="Parameters of the student.")
    trainable_params: int = Field(description="Parameters that received gradients.")
    steps: int = Field(description="Optimizer steps taken.")
    examples: int = Field(description="Training examples (SFT) or rollouts (GRPO) trained on.")
    tokens: int = Field(description="Tokens trained on (student tokenizer).")
    loss_first: float | None = Field(None, description="Loss at the first step.")
    loss_last: float | None = Field(None, description="Loss at the last step.")
    train_s: float = Field(description="Wall time inside training steps, seconds.")
    param_change_rel: float | None = Field(
        None, description="||theta_after - theta_before|| / ||theta_before|| over trainable parameters."
    )
    checkpoint_bytes: int = Field(0, description="Bytes of checkpoints written.")
    jobs: int = Field(0, description="Fine-tuning or reinforcement jobs run.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Anything else the trainer measured.")


# --------------------------------------------------------------------------- the record


class RunRecord(_Model):
    """One strategy on one task under one profile, measured in its own process tree."""

    schema_version: int = Field(SCHEMA_VERSION, description="Version of this schema.")
    run_id: str = Field(description='"<strategy>__<task>__r<repeat>".')
    strategy: str = Field(description="Strategy registry name.")
    task: str = Field(description="Task registry name.")
    profile: str = Field(description='Profile: "quick" or "standard".')
    repeat: int = Field(0, description="Repeat index (REPEAT=N gives 0..N-1).")
    status: Status = Field(description="ok, failed (raised), timeout, killed (signal), oom (memory cap).")
    error: str | None = Field(None, description="One-line reason when status is not ok.")
    workaround: str | None = Field(
        None, description="What had to be done because DSPy itself is broken, with DSPy's error; None if nothing."
    )
    started_at: datetime = Field(description="UTC start.")
    finished_at: datetime = Field(description="UTC end.")
    timeout_s: float = Field(description="Time limit the run ran under, seconds.")
    max_rss_mb: float | None = Field(None, description="Memory cap on the tree, MiB; None if none.")

    wall_s: float = Field(description="Wall time of the child, start to exit, seconds.")
    cpu_s: float = Field(description="CPU time (user+sys) of the whole process tree, seconds.")
    peak_rss_mb: float = Field(description="Peak RSS, MiB; `measurement.peak_rss_method` says how.")
    setup_rss_mb: float | None = Field(
        None, description="RSS after imports and task loading, before any measured phase, MiB: the fixed overhead."
    )
    gpu_peak_mb: float | None = Field(
        None, description="Peak GPU memory of the run, MiB (NVML per-process, else device delta); None without GPU."
    )
    gpu: GPUFigures = Field(default_factory=GPUFigures, description="All GPU figures.")
    disk_written_mb: float = Field(description="Bytes the tree caused to be written to storage, MiB.")

    lm: str = Field(description='The LM the run used, e.g. "offline/simulated" or "openai/gpt-4o-mini".')
    lm_kind: Literal["offline", "real", "none"] = Field(description="offline: the embedded simulated LM.")
    priced_as: str | None = Field(None, description="Model whose price table priced the tokens.")
    lm_calls: int | None = Field(None, description="LM completions served in the whole run.")
    input_tokens: int | None = Field(None, description="Prompt tokens of the whole run.")
    output_tokens: int | None = Field(None, description="Completion tokens of the whole run.")
    api_cost_usd: float | None = Field(None, description="Spend of the whole run at `priced_as`, USD.")
    lm_engine_s: float | None = Field(
        None, description="CPU time spent inside the offline LM serving calls (thread CPU time, every thread), "
        "seconds: its own cost, to set against DSPy's per-call overhead."
    )

    score_before: float | None = Field(None, description="Metric of the unoptimized program on the test split, %.")
    score_after: float | None = Field(None, description="Metric of the compiled program on the test split, %.")
    metric: str | None = Field(None, description="Name of the task's metric.")
    n_train: int | None = Field(None, description="Training examples given to the optimizer.")
    n_dev: int | None = Field(None, description="Dev examples given to the optimizer.")
    n_test: int | None = Field(None, description="Test examples scored.")

    phases: list[Phase] = Field(default_factory=list, description="Measured phases in order.")
    training: TrainingInfo | None = Field(None, description="Weight-training figures, if the strategy trains.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Strategy-specific figures.")
    measurement: Measurement = Field(description="Methods, sampler overhead and the timeline.")

    machine: MachineInfo = Field(description="Machine the run ran on.")
    software: SoftwareInfo = Field(description="Exact software versions.")
    git: GitInfo = Field(description="Commit of the harness.")

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    @property
    def key(self) -> tuple[str, str]:
        return (self.strategy, self.task)


class Calibration(_Model):
    """A fixed CPU workload timed at the start of a bench, to compare times across machines."""

    workload: str = Field(description="What was timed.")
    seconds: float = Field(description="Median wall time of the workload, seconds.")
    repeats: int = Field(description="How many times it ran.")
    spread_pct: float = Field(description="(max - min) / median of the repeats, percent.")


class MetricStat(_Model):
    """One metric over the repeats of one strategy on one task (records with status ok only)."""

    median: float = Field(description="Median over the repeats, in the metric's unit (see METRICS).")
    min: float = Field(description="Smallest value over the repeats.")
    max: float = Field(description="Largest value over the repeats.")
    n: int = Field(description="Repeats that measured the metric.")


class Aggregate(_Model):
    """The repeats of one strategy on one task folded together; computed from `runs` (harness.aggregate)."""

    strategy: str = Field(description="Strategy registry name.")
    task: str = Field(description="Task registry name.")
    statuses: dict[str, int] = Field(description='Records by status, e.g. {"ok": 3}.')
    metrics: dict[str, MetricStat] = Field(
        default_factory=dict, description="Per metric of METRICS, over records with status ok; absent if not measured."
    )


class Report(_Model):
    """Everything one bench produced: the records and the context they ran in."""

    schema_version: int = Field(SCHEMA_VERSION, description="Version of this schema.")
    kind: Literal["dspy-resource-bench/report"] = REPORT_KIND
    created_at: datetime = Field(description="UTC time the report was written.")
    profile: str = Field(description="Profile of the bench.")
    lm: str = Field(description="LM of the bench.")
    priced_as: str | None = Field(None, description="Reference model for prices.")
    machine: MachineInfo
    software: SoftwareInfo
    git: GitInfo
    calibration: Calibration | None = None
    bench_wall_s: float | None = Field(None, description="Wall time of the whole bench, seconds.")
    expected_runs: list[str] = Field(default_factory=list, description="Run ids the bench was asked for.")
    missing_runs: list[str] = Field(default_factory=list, description="Run ids without a record.")
    complete: bool = Field(True, description="False if any asked-for run has no record.")
    runs: list[RunRecord] = Field(default_factory=list)
    aggregates: list[Aggregate] = Field(
        default_factory=list, description="Per strategy and task, per metric: median, min, max and n of `runs`."
    )
    notes: list[str] = Field(default_factory=list, description="What the figures are and are not.")


# --------------------------------------------------------------------------- metrics metadata


class Metric(BaseModel):
    name: str
    unit: str
    description: str
    lower_is_better: bool = True
    stack_only: bool = False  # depends only on the software stack (exact across machines)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric(name="lm_calls", unit="calls", description="LM completions served", stack_only=True),
        Metric(name="input_tokens", unit="tokens", description="prompt tokens", stack_only=True),
        Metric(name="output_tokens", unit="tokens", description="completion tokens", stack_only=True),
        Metric(name="api_cost_usd", unit="USD", description="spend at the reference price", stack_only=True),
        Metric(name="score_after", unit="%", description="test score after compiling", lower_is_better=False,
               stack_only=True),
        Metric(name="wall_s", unit="s", description="wall time of the run"),
        Metric(name="cpu_s", unit="s", description="CPU time of the process tree"),
        Metric(name="peak_rss_mb", unit="MiB", description="peak resident memory"),
        Metric(name="gpu_peak_mb", unit="MiB", description="peak GPU memory"),
        Metric(name="disk_written_mb", unit="MiB", description="bytes written to storage"),
    ]
}


# --------------------------------------------------------------------------- files


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _migrate(data: dict[str, Any], what: str) -> dict[str, Any]:
    """Bring an older document up to SCHEMA_VERSION; refuse a newer one."""
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SchemaError(f"{what} has no valid schema_version: not a dspy-resource-bench file")
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{what} has schema_version {version}, newer than this harness reads ({SCHEMA_VERSION}): "
            "update the harness (git pull) to read it"
        )
    for step in range(version, SCHEMA_VERSION):
        data = MIGRATIONS[step](data)
    return data


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """2 added Report.aggregates: compute them from the report's runs. A run record only changes its version."""
    data = {**data, "schema_version": 2}
    if data.get("kind") == REPORT_KIND:
        from harness.aggregate import build_aggregates  # aggregate imports this module

        runs = data.get("runs")
        runs = [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []
        data["aggregates"] = [a.model_dump() for a in build_aggregates(runs)]
    return data


# MIGRATIONS[v] turns a version-v document into a version-(v+1) one.
MIGRATIONS: dict[int, Any] = {1: _v1_to_v2}


def _read_json(path: Path, what: str) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SchemaError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise SchemaError(f"{what} {path} is a directory, not a file") from None
    except OSError as exc:
        raise SchemaError(f"{what} {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SchemaError(f"{what} {path} is not a text (JSON) file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{what} {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{what} {path} is not a JSON object")
    return data


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"])
    return f"{loc}: {err['msg']}"


def load_report(path: str | Path) -> Report:
    """Read a report, migrating older schema versions. Raises SchemaError with a one-line reason."""
    data = _read_json(Path(path), "report")
    if data.get("kind") != REPORT_KIND:
        raise SchemaError(f"{path} is not a dspy-resource-bench report (no kind={REPORT_KIND!r})")
    data = _migrate(data, f"report {path}")
    runs = data.get("runs")
    for run in runs if isinstance(runs, list) else []:
        if isinstance(run, dict) and isinstance(run.get("schema_version"), int):
            run.update(_migrate(run, f"run {run.get('run_id')} in {path}"))
    try:
        return Report.model_validate(data)
    except ValidationError as exc:
        raise SchemaError(f"report {path} does not match the schema: {_first_error(exc)}") from None


def load_record(path: str | Path) -> RunRecord:
    data = _migrate(_read_json(Path(path), "run record"), f"run record {path}")
    try:
        return RunRecord.model_validate(data)
    except ValidationError as exc:
        raise SchemaError(f"run record {path} does not match the schema: {_first_error(exc)}") from None


def schema_markdown() -> str:
    """The record documented field by field (used by `python -m harness schema` and the docs)."""
    lines = [f"# Run record, schema_version {SCHEMA_VERSION}", ""]
    for model in (RunRecord, Measurement, Phase, LMUsage, GPUFigures, TrainingInfo, Sample, MachineInfo,
                  GPUInfo, SoftwareInfo, GitInfo, Report, Aggregate, MetricStat, Calibration):
        lines += [f"## {model.__name__}", "", (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else "",
                  "", "| field | type | meaning |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            ann = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
            lines.append(f"| `{name}` | `{ann}` | {field.description or ''} |")
        lines.append("")
    return "\n".join(lines)
