"""Reading ``finetune_memory.json`` (written by ``harness.training.memory``, ``make bench-memory``), and how far
the analytic model (``harness.claims.analytic``) agrees with it.

The file's format, as this adapter reads it (version 1): ``entries`` (one per size, mode and device: ``size``,
``mode``, ``device``, ``status``, ``total_params``, ``trainable_params``, ``batch``, ``seq``, ``dtype``,
``step_s_median``, ``tokens_per_s``, and the memory figures ``peak_rss_minus_overhead_mb`` on the CPU,
``torch_max_allocated_mb`` / ``torch_max_reserved_mb`` / ``nvml_used_mb`` on a GPU), ``fits`` (per device,
mode and measure: ``bytes_per_param``, ``intercept_mb``, ``r2``, ``points``, ``sizes``), ``machine``
(``gpus``: name and memory), ``notes`` and ``method``. Only this module knows that layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.claims import analytic
from harness.claims.stats import linear_fit
from harness.machine import ROOT

FILE = "finetune_memory.json"
KIND = "dspy-resource-bench/finetune-memory"
MIB = 1024 * 1024
# The measure compared with the analytic model per device: host RSS above the runtime's fixed overhead on
# the CPU; torch's tensor peak on a GPU (the analytic model counts tensors, not the allocator's cache).
HEADLINE = {"cpu": "peak_rss_minus_overhead_mb", "cuda": "torch_max_allocated_mb"}


@dataclass(frozen=True)
class Entry:
    size: str
    mode: str
    device: str
    status: str
    total_params: int | None
    trainable_params: int | None
    batch: int | None
    seq: int | None
    dtype: str | None
    step_s_median: float | None
    tokens_per_s: float | None
    memory_mb: dict[str, float]
    error: str | None = None


@dataclass(frozen=True)
class Fit:
    device: str
    mode: str
    measure: str
    bytes_per_param: float
    intercept_mb: float
    r2: float | None
    points: int
    sizes: list[str]


@dataclass
class MemoryBench:
    path: str
    entries: list[Entry]
    fits: list[Fit]
    gpus: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    method: list[str] = field(default_factory=list)

    def ok(self, device: str | None = None) -> list[Entry]:
        return [e for e in self.entries if e.status == "ok" and (device is None or e.device == device)]

    def fit(self, device: str, mode: str, measure: str | None = None) -> Fit | None:
        measure = measure or HEADLINE.get(device)
        return next((f for f in self.fits if (f.device, f.mode, f.measure) == (device, mode, measure)), None)

    @property
    def gpu_name(self) -> str | None:
        return self.gpus[0].get("name") if self.gpus else None


def from_json(data: dict[str, Any], path: str = "") -> MemoryBench:
    """The adapter: finetune_memory.json's dict -> MemoryBench. Unknown keys are ignored."""
    entries = []
    for e in data.get("entries", []):
        mem = {k: float(v) for k, v in e.items() if k.endswith("_mb") and isinstance(v, (int, float))}
        entries.append(Entry(size=str(e.get("size")), mode=str(e.get("mode")), device=str(e.get("device")),
                             status=str(e.get("status")), total_params=e.get("total_params"),
                             trainable_params=e.get("trainable_params"), batch=e.get("batch"), seq=e.get("seq"),
                             dtype=e.get("dtype"), step_s_median=e.get("step_s_median"),
                             tokens_per_s=e.get("tokens_per_s"), memory_mb=mem, error=e.get("error")))
    fits = [Fit(device=f["device"], mode=f["mode"], measure=f["measure"], bytes_per_param=float(f["bytes_per_param"]),
                intercept_mb=float(f.get("intercept_mb", 0.0)), r2=f.get("r2"), points=int(f.get("points", 0)),
                sizes=list(f.get("sizes", []))) for f in data.get("fits", [])]
    return MemoryBench(path=path, entries=entries, fits=fits, gpus=list((data.get("machine") or {}).get("gpus") or []),
                       notes=list(data.get("notes") or []), method=list(data.get("method") or []))


# GPU measurements made once on a lent NVIDIA H200 (scripts/gpu_memory.sh) and committed: a report made on
# a machine without a GPU compares the analytic model with these, labelled with the file and the GPU.
REFERENCE_GPU = ROOT / "results" / "gpu-h200" / FILE


def load(folder_or_file: str | Path | None, reference_gpu: Path | None = REFERENCE_GPU) -> MemoryBench | None:
    """OUT/finetune_memory.json (or the file named); when it has no GPU entries, the committed GPU
    measurements are added (each entry keeps its source in `MemoryBench.path`). None if neither exists."""
    own = _read(folder_or_file)
    ref = _read(reference_gpu) if reference_gpu is not None else None
    if ref is None or not ref.ok("cuda") or (own is not None and own.ok("cuda")):
        return own
    gpu_fits = [f for f in ref.fits if f.device == "cuda"]
    gpu_entries = [e for e in ref.entries if e.device == "cuda"]
    if own is None:
        return MemoryBench(path=f"{ref.path} (GPU only)", entries=gpu_entries, fits=gpu_fits, gpus=ref.gpus,
                           notes=ref.notes, method=ref.method)
    return MemoryBench(path=f"{own.path} (CPU) + {ref.path} (GPU: {ref.gpu_name})", entries=own.entries + gpu_entries,
                       fits=own.fits + gpu_fits, gpus=ref.gpus, notes=own.notes, method=own.method)


def _read(folder_or_file: str | Path | None) -> MemoryBench | None:
    """One finetune_memory.json, or None if absent or not that kind of file."""
    if folder_or_file is None:
        return None
    path = Path(folder_or_file)
    if path.is_dir():
        path = path / FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("kind", KIND) != KIND:
        return None
    return from_json(data, shown_path(path))


def shown_path(path: Path) -> str:
    """A path as reports show it: relative to the repository root when inside it (the committed GPU
    reference), so that a report names the same file on every machine."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- measured against analytic


def arch_of(size: str) -> analytic.Arch | None:
    """The analytic architecture of a memory-bench size (harness.training.students.SPECS)."""
    from harness.training.students import SPECS

    spec = SPECS.get(size)
    if spec is None:
        return None
    return analytic.Arch(spec.name, spec.hidden, spec.layers, spec.heads, spec.kv_heads, spec.intermediate,
                         spec.vocab, spec.tie_embeddings, "harness.training.students")


def bench_config(e: Entry) -> tuple[str, analytic.Config]:
    """The regime and config the bench ran an entry under (see harness.training.memory's method)."""
    from harness.training.students import LORA_DEFAULTS

    regime = "fp32-adamw" if e.device == "cpu" or (e.dtype or "").startswith("float32") else "bf16-adamw"
    cfg = analytic.Config(regime=regime, batch=e.batch or 1, seq=e.seq or 1, checkpointing=False,
                          flash_attention=e.device != "cpu", lora_rank=int(LORA_DEFAULTS["r"]))
    return regime, cfg


@dataclass(frozen=True)
class Agreement:
    size: str
    mode: str
    device: str
    measure: str
    params: int
    measured_mb: float
    analytic_mb: float
    analytic_states_mb: float

    @property
    def ratio(self) -> float:
        return self.measured_mb / self.analytic_mb if self.analytic_mb else float("nan")


def agreement(bench: MemoryBench) -> list[Agreement]:
    """Per ok entry: measured memory against the analytic total under the bench's own configuration."""
    rows = []
    for e in bench.ok():
        measure = HEADLINE.get(e.device)
        arch = arch_of(e.size)
        if arch is None or measure is None or measure not in e.memory_mb or e.mode not in ("full", "lora"):
            continue
        regime, cfg = bench_config(e)
        est = analytic.estimate(arch, e.mode, cfg)  # type: ignore[arg-type]
        rows.append(Agreement(e.size, e.mode, e.device, measure, e.total_params or est.params, e.memory_mb[measure],
                              est.total / MIB, est.states / MIB))
    return rows


def slope_agreement(bench: MemoryBench) -> list[dict[str, Any]]:
    """Per (device, mode): the measured slope (bytes/param) against the analytic slope over the same sizes
    (least squares of the analytic totals, activations included) and the states-only figure."""
    out = []
    rows = agreement(bench)
    for device, mode in sorted({(r.device, r.mode) for r in rows}):
        mine = [r for r in rows if (r.device, r.mode) == (device, mode)]
        fit = bench.fit(device, mode)
        if fit is None:
            measured = linear_fit([r.params for r in mine], [r.measured_mb * MIB for r in mine])
            measured_slope = measured.b if measured else None
        else:
            measured_slope = fit.bytes_per_param
        model = linear_fit([r.params for r in mine], [r.analytic_mb * MIB for r in mine])
        regime = "fp32-adamw" if device == "cpu" else "bf16-adamw"
        states = analytic.bytes_per_param(mode, regime)  # type: ignore[arg-type]
        out.append({
            "device": device, "mode": mode, "measure": HEADLINE[device], "sizes": [r.size for r in mine],
            "measured_bytes_per_param": measured_slope, "measured_r2": fit.r2 if fit else None,
            "analytic_bytes_per_param": model.b if model else None,
            "analytic_states_bytes_per_param": states, "regime": regime,
            "ratio": (measured_slope / model.b) if (measured_slope and model and model.b) else None,
            # LoRA's states-only figure is the frozen base alone (adapters excluded): not a slope to compare.
            "ratio_states": (measured_slope / states) if measured_slope and mode == "full" else None,
        })
    return out
