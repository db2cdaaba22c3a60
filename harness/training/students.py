"""The student models, chosen by name: random-initialised Llama-style configs, or a local HF folder.

Nothing here downloads. A registry name builds a random-initialised decoder-only transformer from
a config (the vocabulary comes from the tokenizer it is used with; the ``vocab`` of a spec is the
one the memory bench uses). Any other name is read as a path to a local directory holding a
Hugging Face causal LM and its tokenizer (``from_pretrained(path, local_files_only=True)``).

This module must not import dspy: ``harness.training.memory`` uses it on machines without dspy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# DSPy's own LoRA settings for local fine-tuning (dspy/clients/lm_local.py:253-262).
LORA_DEFAULTS = {"r": 32, "lora_alpha": 64, "lora_dropout": 0.05, "target_modules": "all-linear"}


@dataclass(frozen=True)
class StudentSpec:
    """A Llama-style architecture; ``approx_params`` gives its size for a vocabulary."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int  # vocabulary of the memory bench (a trained tokenizer's size replaces it for real students)
    tie_embeddings: bool
    device: str  # "cpu" or "cuda": where this size is meant to run
    max_positions: int = 4096

    def config(self, vocab_size: int | None = None, **token_ids: int | None) -> Any:
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=vocab_size or self.vocab,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
            intermediate_size=self.intermediate,
            max_position_embeddings=self.max_positions,
            tie_word_embeddings=self.tie_embeddings,
            bos_token_id=token_ids.get("bos_token_id"),
            eos_token_id=token_ids.get("eos_token_id"),
            pad_token_id=token_ids.get("pad_token_id"),
        )

    def approx_params(self, vocab_size: int | None = None) -> int:
        """Parameter count from the shapes (exact for LlamaForCausalLM without biases)."""
        v, h, i = vocab_size or self.vocab, self.hidden, self.intermediate
        kv = h // self.heads * self.kv_heads
        per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h
        embeddings = v * h * (1 if self.tie_embeddings else 2)
        return self.layers * per_layer + embeddings + h


def _spec(name, hidden, layers, heads, intermediate, vocab, *, kv=None, tie=True, device="cpu") -> StudentSpec:
    return StudentSpec(name, hidden, layers, heads, kv or heads, intermediate, vocab, tie, device)


# Sizes are parameters with the spec's vocabulary; the GPU ones follow published model shapes
# (Qwen2.5-0.5B, Llama-3.2-1B, Llama-3.2-3B, Llama-3.1-8B), random-initialised.
SPECS: dict[str, StudentSpec] = {
    s.name: s
    for s in [
        _spec("tiny", 64, 2, 2, 384, 4096),
        _spec("cpu-1m", 128, 2, 4, 512, 4096),
        _spec("cpu-10m", 256, 8, 8, 1024, 8192),
        _spec("cpu-40m", 512, 9, 8, 1536, 16384),
        _spec("cpu-120m", 768, 12, 12, 2304, 32000),
        _spec("cpu-300m", 1024, 20, 16, 2816, 32000),
        _spec("gpu-0.5b", 896, 24, 14, 4864, 151936, kv=2, device="cuda"),
        _spec("gpu-1b", 2048, 16, 32, 8192, 128256, kv=8, device="cuda"),
        _spec("gpu-3b", 3072, 28, 24, 8192, 128256, kv=8, device="cuda"),
        _spec("gpu-8b", 4096, 32, 32, 14336, 128256, kv=8, tie=False, device="cuda"),
    ]
}
CPU_BENCH_SIZES = ("cpu-1m", "cpu-10m", "cpu-40m", "cpu-120m", "cpu-300m")
GPU_BENCH_SIZES = ("gpu-0.5b", "gpu-1b", "gpu-3b", "gpu-8b")


def get_spec(name: str) -> StudentSpec | None:
    return SPECS.get(name)


def is_local_path(student: str) -> bool:
    """A student that is not a registry name is a local HF model directory."""
    return student not in SPECS


def resolve_device(device: str | None = None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> Any:
    """fp32 on the CPU, bf16 on a GPU."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def random_model(spec: StudentSpec, *, vocab_size: int | None = None, device: str = "cpu", dtype: Any = None,
                 seed: int = 0, **token_ids: int | None) -> Any:
    """A random-initialised LlamaForCausalLM built directly on `device` (no download, no CPU detour)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = spec.config(vocab_size, **token_ids)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype or default_dtype(device))


def has_weights(path: str | Path) -> bool:
    """A model folder with weight files; one with only config.json and a tokenizer is a shape to build from."""
    return any(Path(path).glob("*.safetensors")) or any(Path(path).glob("*.bin"))


def config_model(path: str | Path, *, device: str = "cpu", dtype: Any = None, seed: int = 0) -> Any:
    """A model of a folder's architecture and size (its config.json), random-initialised on `device`: a real
    model's memory and step time where its weights cannot travel (a bare GPU machine), never its scores."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype or default_dtype(device))


def local_model(path: str | Path, *, device: str = "cpu", dtype: Any = None) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True,
                                                 dtype=dtype or default_dtype(device))
    return model.to(device)


def local_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def apply_mode(model: Any, mode: str, lora: dict[str, Any] | None = None) -> Any:
    """"full": every parameter trains; "lora": peft adapters on all linear layers, the base frozen."""
    if mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if mode != "lora":
        raise ValueError(f'mode must be "full" or "lora", not {mode!r}')
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", bias="none", **{**LORA_DEFAULTS, **(lora or {})}))


def param_counts(model: Any) -> tuple[int, int]:
    """(total, trainable) parameters, tied weights counted once."""
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable
