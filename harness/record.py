"""The run record and the report: one typed, versioned model that every later step reads.

A *run* is one strategy compiled on one task under one profile, in its own process.
Its :class:`RunRecord` is written by the runner (``harness.runner``) and read by the
report, the claims, ``compare`` and ``check``. A :class:`Report` gathers the records of
one bench with the machine, the software and the git commit they ran on.

Every field says its unit and how it was measured. ``None`` always means "not measured
here" (for example GPU fields on a machine without an NVIDIA GPU), never zero.

Versioning: ``SCHEMA_VERSION`` rises whenever a field changes meaning or is removed;
``harness.load`` reads, migrates and validates the files (this module holds the models only).
Measured figures are finite and not negative: a NaN, an Infinity or a negative time is refused
when a record is made or read, never carried into a report.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 5
REPORT_KIND = "dspy-resource-bench/report"

Status = Literal["ok", "failed", "timeout", "killed", "oom", "budget"]


# Measured figures: finite (NaN and Infinity are refused for every float, see _Model) and not negative.
NonNeg = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]
Percent = Annotated[float, Field(ge=0, le=100)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False, allow_inf_nan=False)


# --------------------------------------------------------------------------- machine


class GPUInfo(_Model):
    name: str = Field(description="GPU model as NVML reports it.")
    memory_mb: NonNeg = Field(description="Total device memory, MiB (NVML).")
    driver: str | None = Field(None, description="NVIDIA driver version.")


class MachineInfo(_Model):
    """The system under test, MLPerf-style: what a reader needs to compare two machines."""

    machine_id: str = Field(description="Short stable hash of hostname, CPU model, cores, RAM and GPUs.")
    hostname: str = Field(description="Host name (for telling machines apart; not an address).")
    cpu_model: str = Field(description="CPU model name from /proc/cpuinfo or platform.")
    cpu_cores_logical: Count = Field(description="Logical CPUs the OS reports (os.cpu_count).")
    cpu_cores_usable: Count = Field(description="CPUs this process may run on (sched_getaffinity).")
    ram_mb: NonNeg = Field(description="Total system RAM, MiB (psutil.virtual_memory).")
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

    lm_calls: Count = Field(0, description="Completions served (one per engine call; n>1 counts n).")
    input_tokens: Count | None = Field(
        0, description="Prompt tokens of all served calls; None (not measured) if any served call's response "
        "carried no usage (`calls_without_usage`): a partial sum is not a figure."
    )
    output_tokens: Count | None = Field(
        0, description="Completion tokens of all served calls; None under the same rule as input_tokens."
    )
    api_cost_usd: NonNeg | None = Field(
        None, description="input_tokens and output_tokens priced at `priced_as` (USD); None if unpriced or if the "
        "tokens are not measured."
    )
    calls_without_usage: Count = Field(
        0, description="Served DSPy LM calls whose response carried no token usage (a server that omits `usage`); "
        "counted by the real LM's usage tracker. The offline LM always counts its tokens (0)."
    )

    def __add__(self, other: "LMUsage") -> "LMUsage":
        missing = self.calls_without_usage + other.calls_without_usage
        cost = None
        if not missing and (self.api_cost_usd is not None or other.api_cost_usd is not None):
            cost = (self.api_cost_usd or 0.0) + (other.api_cost_usd or 0.0)

        def tokens(a: int | None, b: int | None) -> int | None:
            return None if missing or a is None or b is None else a + b

        return LMUsage(
            lm_calls=self.lm_calls + other.lm_calls,
            input_tokens=tokens(self.input_tokens, other.input_tokens),
            output_tokens=tokens(self.output_tokens, other.output_tokens),
            api_cost_usd=cost,
            calls_without_usage=missing,
        )


class LMFailures(_Model):
    """LM calls that failed and examples that errored, counted where they failed (every thread).

    Counted by a DSPy callback in the run's process (harness.lm.usage): `on_lm_end` with an exception
    is one DSPy LM call that failed after DSPy's own retries; `on_adapter_parse_end` with an exception
    is one served answer the adapter could not parse. Zeros are measured zeros."""

    failed_calls: Count = Field(
        0, description="DSPy LM calls that gave the program no usable answer: the call raised after DSPy's own "
        "retries (kinds connection, http_status, timeout, other: never served, not in lm_calls), or its answer was "
        "served (counted in lm_calls and tokens) but the adapter could not parse it (kind parse; ChatAdapter then "
        "tries JSONAdapter, which is one more call)."
    )
    by_kind: dict[str, Count] = Field(
        default_factory=dict, description='failed_calls by kind: "connection" (no answer from the server: refused, '
        'DNS, TLS, reset), "http_status" (the server answered with an HTTP error), "timeout", "parse", "other"; '
        "kinds with no failure are absent."
    )
    http_statuses: dict[str, Count] = Field(
        default_factory=dict, description='Failed calls of kind http_status by HTTP status code, e.g. {"500": 12}.'
    )
    retries: Count | None = Field(
        0, description="Attempts DSPy retried (dspy.LM num_retries, default 3, waiting 1, 2, 4 s; transport, "
        "timeout, rate-limit and 5xx errors only): each is one more request sent to the server, so requests the "
        "server saw = served + failed (non-parse) calls + retries. Counted each time DSPy waits before a retry "
        "(dspy.clients.execution._delay); None where this DSPy has no such step to count."
    )
    errored_examples: dict[str, Count] = Field(
        default_factory=dict, description="Per evaluation phase (eval_before, eval_after): test examples whose "
        "program or metric raised, which dspy.Evaluate scores 0 (examples minus the metric's completed calls); "
        "empty outside evaluations."
    )
    first_error: str | None = Field(
        None, description="The first failed call, one line: kind, server (credentials redacted) and DSPy's message."
    )
    adapter_fallbacks: Count = Field(
        0, description="Served answers ChatAdapter could not parse, after which DSPy asked the LM again through its "
        "JSONAdapter fallback (one more call, in lm_calls): not failures (the fallback's answer is used or, if it "
        "cannot be parsed either, counted as a parse failure), but a cost a weak model adds. 0 for the offline LM."
    )

    @property
    def unserved_calls(self) -> int:
        """Failed calls the server never answered usably (every kind but parse)."""
        return self.failed_calls - self.by_kind.get("parse", 0)

    @property
    def errored(self) -> int:
        return sum(self.errored_examples.values())


class ServerFigures(_Model):
    """An LM server the harness started itself (a local model, or the offline LM over loopback HTTP), measured
    during one run: its own memory apart from the optimizer's, what it was asked and what it answered.

    Requests pass through the harness's recording proxy on 127.0.0.1 (harness.lm.serving), which reads the
    server's own `usage` of every answer; RSS is the server's process tree, sampled by the bench process."""

    server: str = Field(description='What served: "llama.cpp" (llama-cpp-python), "offline-http" or "command".')
    model: str = Field(description="The model it served, as the harness names it (e.g. local/smollm2-135m).")
    model_file: str | None = Field(None, description="File name of the weights it loaded (GGUF), if any.")
    version: str | None = Field(None, description="Version of the server package, if known.")
    settings: dict[str, Any] = Field(default_factory=dict, description="How it was started: threads, context...")
    startup_s: NonNeg | None = Field(None, description="Seconds from starting the server to its first healthy "
                                     "answer (model load); measured once per bench.")
    requests: Count = Field(0, description="HTTP requests the server answered in the run (200 or not).")
    calls: Count = Field(0, description="Chat completion requests DSPy sent in the run (before any split).")
    choices: Count = Field(0, description="Completions (choices) the server returned in the run.")
    prompt_tokens: Count | None = Field(None, description="Sum of the server's own usage.prompt_tokens; None if "
                                        "any answer lacked usage.")
    completion_tokens: Count | None = Field(None, description="Sum of the server's usage.completion_tokens; None "
                                            "under the same rule.")
    errors: Count = Field(0, description="Requests the server answered with an HTTP error or not at all.")
    n_shortfalls: Count = Field(0, description="Requests asking n > 1 completions that the server answered with "
                                "fewer; the proxy asked again for the rest (one request each), so DSPy got n.")
    token_limit_added: Count = Field(0, description="Requests that carried only max_completion_tokens, which the "
                                     "proxy copied to max_tokens (llama.cpp ignores the former).")
    call_s_mean: NonNeg | None = Field(None, description="Mean seconds per request at the proxy (server time).")
    call_s_p50: NonNeg | None = Field(None, description="Median seconds per request.")
    call_s_p95: NonNeg | None = Field(None, description="95th percentile seconds per request.")
    busy_s: NonNeg | None = Field(None, description="Seconds the server spent answering requests in the run.")
    prompt_tokens_per_s: NonNeg | None = Field(None, description="Prompt evaluation speed from the server's own "
                                               "timing log (llama.cpp: prompt eval time); None without one.")
    generation_tokens_per_s: NonNeg | None = Field(None, description="Generation speed from the server's own timing "
                                                   "log (llama.cpp: eval time); None without one.")
    peak_rss_mb: NonNeg | None = Field(None, description="Highest RSS of the server's process tree sampled during "
                                       "the run (every 0.5 s), MiB: the LM's memory, apart from the run's.")
    rss_start_mb: NonNeg | None = Field(None, description="RSS of the server's tree when the run started, MiB.")
    hwm_mb: NonNeg | None = Field(None, description="The server process's VmHWM at the run's end (its lifetime "
                                  "high-water mark), MiB.")
    method: str = Field("", description="How the figures were measured.")


class Phase(_Model):
    """One measured step inside the child: baseline evaluation, compile, evaluation after."""

    name: str = Field(description='"setup", "eval_before", "compile" or "eval_after".')
    wall_s: NonNeg = Field(description="Wall time of the phase, seconds (time.perf_counter).")
    cpu_s: NonNeg = Field(description="CPU time (user+sys) of the child process in the phase, seconds.")
    rss_end_mb: NonNeg = Field(description="Resident set size at the phase's end, MiB (VmRSS).")
    hwm_mb: NonNeg = Field(description="Kernel high-water mark (VmHWM) at the phase's end, MiB.")
    usage: LMUsage = Field(default_factory=LMUsage, description="LM calls and tokens served in the phase.")
    lm_engine_s: NonNeg | None = Field(
        None, description="CPU time the offline LM spent serving the phase's calls (thread CPU time), seconds."
    )
    n_examples: Count | None = Field(None, description="Examples the phase evaluated or trained on, if any.")
    lm_failures: LMFailures | None = Field(
        None, description="LM calls that failed, retries and (evaluations) errored examples in the phase; None in "
        "records made before they were counted, and for setup."
    )


class Sample(_Model):
    """One point of the poller's timeline (the weaker method for peaks; kept for plots)."""

    t: NonNeg = Field(description="Seconds since the child started.")
    rss_mb: NonNeg = Field(description="RSS summed over the process tree, MiB.")
    cpu_pct: NonNeg = Field(description="CPU use of the tree since the previous sample, % of one core.")
    gpu_mb: NonNeg | None = Field(None, description="GPU memory of the tree (NVML), MiB; None without a GPU.")


class Measurement(_Model):
    """How the host resources were measured, and what the sampler itself cost."""

    peak_rss_method: str = Field(description="How `peak_rss_mb` was obtained.")
    hwm_tree_sum_mb: NonNeg | None = Field(
        None, description="Sum of the VmHWM of every process seen in the tree, MiB: an upper bound for the tree."
    )
    sampled_peak_rss_mb: NonNeg | None = Field(
        None, description="Highest RSS sum over the tree seen by the poller, MiB: a lower bound."
    )
    processes_seen: Count = Field(0, description="Processes seen in the run's tree (child included).")
    sample_interval_s: NonNeg = Field(description="Poller interval, seconds.")
    samples: Count = Field(0, description="Samples taken.")
    sampler_cpu_s: NonNeg = Field(0.0, description="CPU time of the sampler thread (time.thread_time), seconds.")
    sampler_overhead_pct: NonNeg | None = Field(
        None, description="sampler_cpu_s as a share of the run's cpu_s, percent."
    )
    cpu_method: str = Field(description="How `cpu_s` was obtained.")
    disk_method: str = Field(description="How `disk_written_mb` was obtained.")
    gpu_method: str | None = Field(None, description="How the GPU fields were obtained, or why they are null.")
    timeline: list[Sample] = Field(default_factory=list, description="Poller timeline, at most ~2,000 points.")


class GPUFigures(_Model):
    device_peak_mb: NonNeg | None = Field(
        None, description="Peak device memory used during the run minus before it, MiB (NVML, sampled)."
    )
    process_peak_mb: NonNeg | None = Field(
        None, description="Peak GPU memory of the run's processes, MiB (NVML per-process, sampled)."
    )
    torch_peak_allocated_mb: NonNeg | None = Field(
        None, description="torch.cuda.max_memory_allocated in the child, MiB (tensors only)."
    )
    torch_peak_reserved_mb: NonNeg | None = Field(
        None, description="torch.cuda.max_memory_reserved in the child, MiB (caching allocator)."
    )


class TrainingInfo(_Model):
    """Figures of strategies that change model weights (BootstrapFinetune, GRPO, BetterTogether)."""

    student: str = Field(description="Student model name (registry entry or local path).")
    mode: str = Field(description='"full" or "lora".')
    device: str = Field(description='"cpu" or "cuda".')
    dtype: str = Field(description="Training dtype.")
    total_params: Count = Field(description="Parameters of the student.")
    trainable_params: Count = Field(description="Parameters that received gradients.")
    steps: Count = Field(description="Optimizer steps taken.")
    examples: Count = Field(description="Training examples (SFT) or rollouts (GRPO) trained on.")
    tokens: Count = Field(description="Tokens trained on (student tokenizer).")
    loss_first: float | None = Field(None, description="Loss at the first step.")
    loss_last: float | None = Field(None, description="Loss at the last step.")
    train_s: NonNeg = Field(description="Wall time inside training steps, seconds.")
    param_change_rel: NonNeg | None = Field(
        None, description="||theta_after - theta_before|| / ||theta_before|| over trainable parameters."
    )
    checkpoint_bytes: Count = Field(0, description="Bytes of checkpoints written.")
    jobs: Count = Field(0, description="Fine-tuning or reinforcement jobs run.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Anything else the trainer measured.")


class BudgetFigures(_Model):
    """An optimizer that budgets its own metric calls (GEPA): the budget asked, the budget it resolved, what it used,
    and the compile phase's LM usage split between its reflection LM and the program it optimizes."""

    optimizer: str = Field(description='The optimizer whose budget this is, e.g. "GEPA".')
    asked: str = Field(description='The budget as asked, e.g. \'auto="light"\' or "max_metric_calls=64".')
    auto: Literal["light", "medium", "heavy"] | None = Field(None, description="The auto preset asked, if any.")
    max_metric_calls_asked: Count | None = Field(None, description="The max_metric_calls asked, if any.")
    metric_call_budget: Count = Field(
        description="The max_metric_calls the optimizer ran under: as asked, or for auto the number it computed "
        "(GEPA.auto_budget, from the predictors and the valset size)."
    )
    metric_calls: Count = Field(
        description="Metric calls the optimizer counted itself (GEPA's total_metric_calls = GEPAState.total_num_evals: "
        "program runs on one example scored by the metric; its feedback calls are not counted)."
    )
    full_val_evals: Count | None = Field(
        None, description="Evaluations on the whole valset (GEPA's num_full_val_evals).")
    candidates: Count | None = Field(None, description="Candidate programs the optimizer kept, the seed included.")
    reflection: LMUsage = Field(description="LM calls and tokens served while the optimizer's instruction proposer "
                                "ran (the reflection LM); `split_method` says how.")
    task: LMUsage = Field(description="The compile phase's other LM calls and tokens: the program being optimized, run "
                          "on train and val examples (compile phase minus reflection).")
    split_method: str = Field(description="How reflection calls were told apart from the program's calls.")


# --------------------------------------------------------------------------- the record


def variant(settings: dict[str, Any] | None) -> str:
    """'auto=medium,breadth=4' for a strategy's --set settings ('' for none): part of its run ids and keys."""
    return ",".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted((settings or {}).items()))


class RunRecord(_Model):
    """One strategy on one task under one profile, measured in its own process tree."""

    schema_version: int = Field(SCHEMA_VERSION, description="Version of this schema.")
    run_id: str = Field(description='"<strategy>__<task>__r<repeat>".')
    strategy: str = Field(description="Strategy registry name.")
    task: str = Field(description="Task registry name.")
    profile: str = Field(description='Profile: "quick" or "standard".')
    repeat: Count = Field(0, description="Repeat index (REPEAT=N gives 0..N-1).")
    status: Status = Field(description="ok, failed (raised), timeout, killed (signal), oom (memory cap), budget "
                                       "(--max-calls or --max-spend reached: the run stopped there, what it spent kept).")
    error: str | None = Field(None, description="One-line reason when status is not ok.")
    workaround: str | None = Field(
        None, description="What had to be done because DSPy itself is broken, with DSPy's error; None if nothing."
    )
    started_at: datetime = Field(description="UTC start.")
    finished_at: datetime = Field(description="UTC end.")
    timeout_s: NonNeg = Field(description="Time limit the run ran under, seconds.")
    max_rss_mb: NonNeg | None = Field(None, description="Memory cap on the tree, MiB; None if none.")

    wall_s: NonNeg = Field(description="Wall time of the child, start to exit, seconds.")
    jobs: Count = Field(1, description="Runs its bench ran at once (--jobs N); 1: one run at a time. A wall time "
                                       "from a bench of N > 1 is not that of a run alone, and is not gated against one.")
    ran_beside: Count = Field(0, description="The most other measured runs of its bench alive at once while it ran "
                                             "(0: it ran alone). CPU time, peak RSS and disk are counted for its own "
                                             "tree alone (sharing the CPUs still raises its wall and CPU times).")
    cpu_s: NonNeg = Field(description="CPU time (user+sys) of the whole process tree, seconds.")
    peak_rss_mb: NonNeg = Field(description="Peak RSS, MiB; `measurement.peak_rss_method` says how.")
    setup_rss_mb: NonNeg | None = Field(
        None, description="RSS after imports and task loading, before any measured phase, MiB: the fixed overhead."
    )
    gpu_peak_mb: NonNeg | None = Field(
        None, description="Peak GPU memory of the run, MiB (NVML per-process, else device delta); None without GPU."
    )
    gpu: GPUFigures = Field(default_factory=GPUFigures, description="All GPU figures.")
    disk_written_mb: NonNeg = Field(description="Bytes the tree caused to be written to storage, MiB.")

    lm: str = Field(description='The LM the run used, e.g. "offline/simulated" or "openai/gpt-4o-mini".')
    lm_kind: Literal["offline", "offline-http", "local", "real", "none"] = Field(
        description="offline: the embedded simulated LM, in the run's process; offline-http: the same LM served over "
        "loopback HTTP; local: a real model on a server the harness started itself; real: a hosted LM, or a server "
        "the user runs (--api-base).")
    priced_as: str | None = Field(None, description="Model whose price table priced the tokens.")
    lm_calls: Count | None = Field(None, description="LM completions served in the whole run.")
    input_tokens: Count | None = Field(None, description="Prompt tokens of the whole run.")
    output_tokens: Count | None = Field(None, description="Completion tokens of the whole run.")
    api_cost_usd: NonNeg | None = Field(None, description="Spend of the whole run at `priced_as`, USD.")
    lm_engine_s: NonNeg | None = Field(
        None, description="CPU time spent inside the offline LM serving calls (thread CPU time, every thread), "
        "seconds: its own cost, to set against DSPy's per-call overhead."
    )
    lm_calls_without_usage: Count | None = Field(
        None, description="Served LM calls whose response carried no token usage; when above 0, input_tokens, "
        "output_tokens and api_cost_usd are None (not measured). None in records made before it was counted."
    )
    lm_failures: LMFailures | None = Field(
        None, description="LM calls that failed (by kind, HTTP status), retries, and examples that errored in each "
        "evaluation, over the whole run; None in records made before they were counted."
    )
    lm_failure_summary: str | None = Field(
        None, description='One line for status lines and reports when any LM call failed or any example errored, '
        'e.g. "12 of 60 LM calls failed (http 500 x12), 4 examples errored"; None when nothing failed.'
    )

    lm_server: ServerFigures | None = Field(
        None, description="The LM server the harness started (lm_kind local or offline-http), measured during the "
        "run; None for the in-process offline LM and for servers the harness did not start.")

    score_before: Percent | None = Field(None, description="Metric of the unoptimized program on the test split, %.")
    score_after: Percent | None = Field(None, description="Metric of the compiled program on the test split, %.")
    metric: str | None = Field(None, description="Name of the task's metric.")
    n_train: Count | None = Field(None, description="Training examples given to the optimizer.")
    n_dev: Count | None = Field(None, description="Dev examples given to the optimizer.")
    n_test: Count | None = Field(None, description="Test examples scored.")

    phases: list[Phase] = Field(default_factory=list, description="Measured phases in order.")
    training: TrainingInfo | None = Field(None, description="Weight-training figures, if the strategy trains.")
    budget: BudgetFigures | None = Field(
        None, description="Metric-call budget and reflection/program LM usage of an optimizer that budgets its own "
        "metric calls (GEPA); None for the others."
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="Strategy-specific figures.")
    measurement: Measurement = Field(description="Methods, sampler overhead and the timeline.")

    machine: MachineInfo = Field(description="Machine the run ran on.")
    software: SoftwareInfo = Field(description="Exact software versions.")
    git: GitInfo = Field(description="Commit of the harness.")

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    @property
    def settings(self) -> dict[str, Any]:
        """The strategy's settings the run was given with --set ({}: its profile's)."""
        return dict(self.extra.get("settings") or {})

    @property
    def prompt_model(self) -> str | None:
        """The --prompt-lm the optimizer was given (None: none given, or a strategy that takes none)."""
        given = self.extra.get("prompt_lm") or {}
        return given.get("model") if given.get("given_as") else None

    @property
    def key(self) -> tuple[str, str]:
        """(strategy, task) that compare, check and the report match runs by: a run with --set settings, or one
        whose optimizer was given a --prompt-lm, is its own variant, e.g. ('MIPROv2@auto=medium', 'classify') or
        ('COPRO@prompt_lm=openai/gpt-4o', 'classify'), never compared with the defaults' runs."""
        label = ",".join(part for part in (variant(self.settings),
                                           f"prompt_lm={self.prompt_model}" if self.prompt_model else "") if part)
        return (f"{self.strategy}@{label}" if label else self.strategy, self.task)

    @property
    def student(self) -> str | None:
        """The student a weight run trained: 'tiny' (the random toy), 'local/<name>' or a folder; None if none."""
        if self.training is None:
            return None
        name = self.extra.get("student") or str(self.extra.get("student_source") or "").split(":")[0]
        return str(name or ("a pretrained folder" if self.training.extra.get("pretrained") else "tiny"))

    @property
    def toy_student(self) -> bool:
        """A weight run whose student was the random toy: its time, RAM and score are not a real model's. (A student
        built from a real model's config, init "config", has that model's size: its time and RAM are real.)"""
        if self.training is None:
            return False
        return self.training.extra.get("init", "pretrained" if self.training.extra.get("pretrained") else "toy") == "toy"


class Calibration(_Model):
    """A fixed CPU workload timed at the start of a bench, to compare times across machines."""

    workload: str = Field(description="What was timed.")
    seconds: float = Field(gt=0, description="Median wall time of the workload, seconds.")
    repeats: Count = Field(description="How many times it ran.")
    spread_pct: NonNeg = Field(description="(max - min) / median of the repeats, percent.")


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
    bench_wall_s: NonNeg | None = Field(None, description="Wall time of the whole bench, seconds.")
    expected_runs: list[str] = Field(default_factory=list, description="Run ids the bench was asked for.")
    missing_runs: list[str] = Field(default_factory=list, description="Run ids without a record.")
    complete: bool = Field(True, description="False if any asked-for run has no record.")
    runs: list[RunRecord] = Field(default_factory=list)
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


# --------------------------------------------------------------------------- helpers


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def schema_markdown() -> str:
    """The record documented field by field (used by `python -m harness schema` and the docs)."""
    lines = [f"# Run record, schema_version {SCHEMA_VERSION}", ""]
    for model in (RunRecord, Measurement, Phase, LMUsage, LMFailures, ServerFigures, GPUFigures, TrainingInfo, BudgetFigures, Sample,
                  MachineInfo, GPUInfo, SoftwareInfo, GitInfo, Report, Calibration):
        lines += [f"## {model.__name__}", "", (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else "",
                  "", "| field | type | meaning |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            ann = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
            lines.append(f"| `{name}` | `{ann}` | {field.description or ''} |")
        lines.append("")
    return "\n".join(lines)
