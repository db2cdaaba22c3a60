"""The weight-training side, projected: GPUs, time, money and storage of the stated workloads at the study's
model sizes. Every figure is a projection; the method strings say from what.

- Memory per GPU job: the analytic model (``harness.claims.analytic``) under the claims file's config; GPUs
  needed = total / (GPU memory x usable share), rounded up.
- Speed: a GPU step time measured by ``make bench-memory`` where there is one (achieved FLOPs/s of its largest
  full fine-tuning run -> MFU on that GPU), otherwise the assumed MFU; FLOPs from the analytic count per token
  (claims file [assumptions.compute]).
- Money: GPU-hours x the claims file's $/GPU-hour table (a low and a high price per GPU).
- Storage: the bf16 base model plus the kept checkpoints (full: the training state; LoRA: the adapters' state).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from harness.claims import analytic
from harness.claims.memory_data import MemoryBench
from harness.claims.spec import ClaimsFile


@dataclass(frozen=True)
class GPU:
    name: str
    match: str
    memory_gb: float
    tflops: float
    usd_per_hour: tuple[float, float]


def gpu_table(claims: ClaimsFile) -> list[GPU]:
    return [GPU(g["name"], g["match"], float(g["memory_gb"]), float(g["bf16_dense_tflops"]),
                (float(g["usd_per_hour"][0]), float(g["usd_per_hour"][-1])))
            for g in claims.assumptions.get("gpus", [])]


def rented_gpu(claims: ClaimsFile) -> GPU:
    name = claims.assumption("compute", "gpu")
    table = gpu_table(claims)
    return next((g for g in table if g.name == name), table[0])


def match_gpu(claims: ClaimsFile, device_name: str | None) -> GPU | None:
    if not device_name:
        return None
    return next((g for g in gpu_table(claims) if g.match.lower() in device_name.lower()), None)


def finetune_config(claims: ClaimsFile) -> analytic.Config:
    f = claims.assumptions.get("finetune", {})
    return analytic.Config(regime=f.get("regime", "mixed-bf16-adamw"), batch=int(f.get("batch", 1)),
                           seq=int(f.get("seq", 512)), checkpointing=bool(f.get("checkpointing", True)),
                           flash_attention=bool(f.get("flash_attention", True)),
                           lora_rank=int(f.get("lora_rank", 32)), qlora_rank=int(f.get("qlora_rank", 64)))


# --------------------------------------------------------------------------- speed


@dataclass(frozen=True)
class Speed:
    mfu: float
    basis: str  # "measured" or "assumed"
    source: str


def training_speed(claims: ClaimsFile, memory: MemoryBench | None) -> Speed:
    """MFU from the largest measured GPU full fine-tuning run, else the assumed one."""
    assumed = float(claims.assumption("compute", "train_mfu", default=0.4))
    if memory is not None:
        gpu = match_gpu(claims, memory.gpu_name)
        runs = [e for e in memory.ok("cuda") if e.mode == "full" and e.tokens_per_s and e.total_params]
        if gpu and runs:
            e = max(runs, key=lambda x: x.total_params or 0)
            achieved = 6 * e.total_params * e.tokens_per_s
            mfu = achieved / (gpu.tflops * 1e12)
            return Speed(mfu, "measured", f"measured on {memory.gpu_name} ({e.size}, {e.total_params / 1e9:.2f}B "
                         f"params, full, batch {e.batch} x {e.seq}): median step {e.step_s_median} s, "
                         f"{e.tokens_per_s:,.0f} tokens/s = {achieved / 1e12:,.0f} TFLOP/s at 6N FLOPs/token "
                         f"= {100 * mfu:.0f}% of {gpu.name}'s {gpu.tflops:g} TFLOP/s")
        why = "no GPU run in finetune_memory.json" if not runs else f"GPU {memory.gpu_name!r} not in the GPU table"
    else:
        why = "no finetune_memory.json beside the report"
    return Speed(assumed, "assumed", f"assumed MFU {100 * assumed:.0f}% (GPU step time not measured here: {why})")


# --------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Case:
    workload: str
    strategy: str
    size: str
    mode: str
    params: int
    memory_gb: float
    gpus: int
    train_tokens: float
    generated_tokens: float
    flops: float
    gpu_hours: float
    wall_s: float
    cost_usd_low: float
    cost_usd_high: float
    storage_gb: float

    def as_dict(self) -> dict:
        return asdict(self)


def storage_bytes(arch: analytic.Arch, mode: str, cfg: analytic.Config, claims: ClaimsFile) -> float:
    f = claims.assumptions.get("finetune", {})
    kept = int(f.get("checkpoints_kept", 3))
    state = float(f.get("checkpoint_bytes_per_param", 14))
    base = float(f.get("base_model_bytes_per_param", 2)) * arch.params()
    if mode == "full":
        return base + kept * state * arch.params()
    rank = cfg.qlora_rank if mode == "qlora" else cfg.lora_rank
    return base + kept * state * arch.lora_params(rank)


def workload_tokens(w: dict) -> tuple[float, float]:
    """(trained tokens, generated tokens) of a workload."""
    if w["kind"] == "sft":
        return float(w["examples"] * w["tokens_per_example"] * w["epochs"]), 0.0
    if w["kind"] == "grpo":
        rollouts = w["steps"] * w["examples_per_step"] * w["rollouts_per_example"]
        return float(rollouts * w["tokens_per_rollout"]), float(rollouts * w["generated_tokens_per_rollout"])
    raise ValueError(f"workload {w.get('name')!r}: kind must be sft or grpo")


def cases(claims: ClaimsFile, memory: MemoryBench | None = None, sizes: list[str] | None = None,
          modes: list[str] | None = None) -> tuple[list[Case], Speed, GPU]:
    """Every workload x size x mode, projected."""
    cfg = finetune_config(claims)
    f = claims.assumptions.get("finetune", {})
    comp = claims.assumptions.get("compute", {})
    sizes = sizes or list(f.get("sizes", []))
    modes = modes or list(f.get("dspy_methods", ["full", "lora"]))
    gpu = rented_gpu(claims)
    speed = training_speed(claims, memory)
    usable = float(f.get("gpu_usable_fraction", 0.9))
    decode_mfu = float(comp.get("decode_mfu", 0.1))
    per_token = comp.get("flops_per_token", {"full": 6, "lora": 4, "qlora": 4})
    extra = float(comp.get("checkpointing_extra", 2)) if cfg.checkpointing else 0.0
    out = []
    for w in claims.assumptions.get("workloads", []):
        train_tokens, gen_tokens = workload_tokens(w)
        for size in sizes:
            arch = analytic.ARCHS[size]
            n = arch.params()
            for mode in modes:
                est = analytic.estimate(arch, mode, cfg)  # type: ignore[arg-type]
                gpus = max(1, math.ceil(est.total / (gpu.memory_gb * 1e9 * usable)))
                train_flops = (float(per_token[mode]) + extra) * n * train_tokens
                gen_flops = 2.0 * n * gen_tokens
                gpu_s = train_flops / (gpu.tflops * 1e12 * speed.mfu) + gen_flops / (gpu.tflops * 1e12 * decode_mfu)
                hours = gpu_s / 3600
                out.append(Case(workload=w["name"], strategy=w.get("strategy", ""), size=size, mode=mode, params=n,
                                memory_gb=est.total / 1e9, gpus=gpus, train_tokens=train_tokens,
                                generated_tokens=gen_tokens, flops=train_flops + gen_flops, gpu_hours=hours,
                                wall_s=gpu_s / gpus, cost_usd_low=hours * gpu.usd_per_hour[0],
                                cost_usd_high=hours * gpu.usd_per_hour[1],
                                storage_gb=storage_bytes(arch, mode, cfg, claims) / 1e9))
    return out, speed, gpu


def method(claims: ClaimsFile, speed: Speed, gpu: GPU) -> str:
    comp = claims.assumptions.get("compute", {})
    return (f"projected: GPU-hours = FLOPs / ({gpu.name} {gpu.tflops:g} TFLOP/s x MFU), FLOPs = "
            f"{comp.get('source', 'an analytic count per token')}; {speed.source}; rollouts at an assumed decode MFU "
            f"of {100 * float(comp.get('decode_mfu', 0.1)):.0f}%; GPUs = analytic memory / ({gpu.memory_gb:g} GB x "
            f"usable share), wall time = GPU-hours / GPUs; money = GPU-hours x ${gpu.usd_per_hour[0]:.2f}-"
            f"{gpu.usd_per_hour[1]:.2f} per GPU-hour (assumed list prices)")
