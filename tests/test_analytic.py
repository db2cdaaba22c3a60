"""The analytic fine-tuning memory model against figures worked by hand, and its agreement with a measurement."""

from __future__ import annotations

import pytest

from harness.claims import analytic, memory_data
from harness.claims.analytic import ARCHS, Config, bytes_per_param, estimate, state_bytes

GB = 1e9


def test_full_finetuning_7b_mixed_precision_adamw_is_112_gb_before_activations():
    # 7e9 params x (bf16 weights 2 + fp32 master 4 + bf16 grads 2 + fp32 Adam m and v 8) = 112 GB
    parts = state_bytes(7e9, "full", "mixed-bf16-adamw")
    assert parts == {"weights": 14e9, "master": 28e9, "grads": 14e9, "optimizer": 56e9}
    assert sum(parts.values()) == pytest.approx(112 * GB)
    assert bytes_per_param("full", "mixed-bf16-adamw") == 16


def test_regimes_bytes_per_param():
    assert bytes_per_param("full", "fp32-adamw") == 16  # 4 weights + 4 grads + 8 Adam: what the CPU bench runs
    assert bytes_per_param("full", "bf16-adamw") == 8  # moments in the weights' dtype: what the GPU bench runs
    assert bytes_per_param("lora", "mixed-bf16-adamw") == 2  # the frozen bf16 base alone
    assert bytes_per_param("qlora") == pytest.approx(0.5 + 0.127 / 8)  # NF4 + double-quantised constants


def test_lora_7b_is_14_gb_base_plus_adapters():
    assert state_bytes(7e9, "lora")["weights"] == pytest.approx(14 * GB)
    arch = ARCHS["7B"]  # Llama-2-7B: 6,738,415,616 parameters
    assert arch.params() == 6_738_415_616
    # rank 32 on q, k, v, o, gate, up, down of 32 blocks: 32 * 32 * (9h + 2kv + 3i) with h = kv = 4096, i = 11008
    assert arch.lora_params(32) == 32 * 32 * (9 * 4096 + 2 * 4096 + 3 * 11008) == 79_953_920
    e = estimate(arch, "lora", Config(lora_rank=32))
    adapters = 79_953_920 * 16  # full mixed-precision cost per adapter parameter
    assert e.states == pytest.approx(arch.params() * 2 + adapters)
    assert 14 * GB < e.total < 17 * GB


def test_qlora_65b_is_about_33_gb_base_and_near_the_papers_45_gb():
    assert state_bytes(65e9, "qlora")["weights"] == pytest.approx(65e9 * (0.5 + 0.127 / 8))  # 33.5 GB
    assert 33 * GB < state_bytes(65e9, "qlora")["weights"] < 34 * GB
    e = estimate(ARCHS["65B"], "qlora", Config(batch=1, seq=512, checkpointing=True, qlora_rank=64))
    assert e.total_gb == pytest.approx(45, rel=0.15)  # QLoRA paper: 65B fine-tuned in 45 GB


def test_activations_hand_worked_and_checkpointing_saves_them():
    arch = ARCHS["7B"]
    off = Config(batch=1, seq=512, checkpointing=False, flash_attention=True)
    acts, logits = analytic.activation_bytes(arch, off)
    per_token_layer = 12 * 4096 + 4 * 4096 + 8 * 11008  # 153,600 bytes in 16-bit
    assert acts == pytest.approx(32 * per_token_layer * 512)
    assert logits == pytest.approx(512 * 32000 * 6)
    on, _ = analytic.activation_bytes(arch, Config(batch=1, seq=512, checkpointing=True))
    assert on == pytest.approx(32 * 2 * 4096 * 512 + per_token_layer * 512)
    no_flash, _ = analytic.activation_bytes(arch, Config(batch=1, seq=512, checkpointing=False, flash_attention=False))
    assert no_flash - acts == pytest.approx(32 * 4 * 32 * 512 * 512)
    fp32, _ = analytic.activation_bytes(arch, off, act_bytes=4)
    assert fp32 == pytest.approx(2 * acts)


def test_every_size_orders_full_above_lora_above_qlora():
    for size in ARCHS:
        full, lora, qlora = (estimate(ARCHS[size], m).total for m in ("full", "lora", "qlora"))
        assert full > lora > qlora


def _bench(scale: float) -> dict:
    """A finetune_memory.json whose CPU peaks are the analytic totals times `scale`."""
    entries = []
    for size in ("cpu-1m", "cpu-10m", "cpu-40m"):
        for mode in ("full", "lora"):
            e = {"size": size, "mode": mode, "device": "cpu", "status": "ok", "batch": 2, "seq": 64,
                 "dtype": "float32", "step_s_median": 0.1, "tokens_per_s": 1000.0}
            entry = memory_data.from_json({"entries": [e]}).entries[0]
            _, cfg = memory_data.bench_config(entry)
            est = estimate(memory_data.arch_of(size), mode, cfg)
            e.update(total_params=est.params, trainable_params=est.trainable,
                     peak_rss_minus_overhead_mb=scale * est.total / memory_data.MIB)
            entries.append(e)
    return {"kind": memory_data.KIND, "entries": entries, "fits": [], "machine": {"gpus": []}}


def test_agreement_with_a_measurement_reports_the_ratio():
    bench = memory_data.from_json(_bench(1.25))
    rows = memory_data.agreement(bench)
    assert len(rows) == 6 and all(r.ratio == pytest.approx(1.25) for r in rows)
    slopes = {s["mode"]: s for s in memory_data.slope_agreement(bench)}
    assert slopes["full"]["ratio"] == pytest.approx(1.25)  # fitted from the entries (the file had no fits)
    assert slopes["full"]["analytic_states_bytes_per_param"] == 16
    assert slopes["lora"]["ratio_states"] is None  # LoRA's base-only figure is not a slope to compare


def test_load_ignores_what_is_not_a_memory_bench(tmp_path):
    assert memory_data.load(tmp_path, reference_gpu=None) is None
    (tmp_path / "finetune_memory.json").write_text('{"kind": "something-else"}')
    assert memory_data.load(tmp_path, reference_gpu=None) is None


def test_a_measured_gpu_step_time_sets_the_mfu_else_it_is_assumed():
    from harness.claims import training_cost
    from harness.claims.spec import load_claims

    claims = load_claims()
    assumed = training_cost.training_speed(claims, None)
    assert assumed.basis == "assumed" and assumed.mfu == claims.assumption("compute", "train_mfu")
    bench = memory_data.from_json({
        "entries": [{"size": "gpu-8b", "mode": "full", "device": "cuda", "status": "ok", "total_params": 8_000_000_000,
                     "trainable_params": 8_000_000_000, "batch": 1, "seq": 256, "dtype": "bfloat16",
                     "step_s_median": 0.032, "tokens_per_s": 8000.0, "torch_max_allocated_mb": 70000.0}],
        "machine": {"gpus": [{"name": "NVIDIA H200", "memory_mb": 143771}]}})
    speed = training_cost.training_speed(claims, bench)
    assert speed.basis == "measured" and "NVIDIA H200" in speed.source
    assert speed.mfu == pytest.approx(6 * 8e9 * 8000 / 989e12)
    cases, used, gpu = training_cost.cases(claims, bench, sizes=["7B"], modes=["full"])
    sft = next(c for c in cases if c.workload == "SFT, DSPy defaults")
    flops = (6 + 2) * ARCHS["7B"].params() * 10000 * 1024 * 5  # full + checkpointing recompute, 51.2M tokens
    assert sft.gpu_hours == pytest.approx(flops / (gpu.tflops * 1e12 * speed.mfu) / 3600)
    assert sft.gpus == 2  # 108 GB of training state on 80 GB GPUs (90% usable)


def test_the_committed_gpu_measurements_join_a_cpu_only_folder(tmp_path):
    bench = memory_data.load(tmp_path)  # no finetune_memory.json here: the committed H200 figures only
    assert bench is not None and bench.ok("cuda") and not bench.ok("cpu")
    assert "gpu-h200" in bench.path and bench.gpu_name == "NVIDIA H200"
    assert bench.fit("cuda", "full").r2 > 0.99

