"""An analytic model of fine-tuning memory: weights, gradients, optimizer states, adapters, activations.

Every figure here is a projection from stated assumptions, never a measurement. GB means 10^9 bytes.

Assumptions, stated once:

- Architectures are Llama-style decoders (RMSNorm, rotary attention with grouped KV heads, SwiGLU MLP,
  no biases) with published shapes: ``ARCHS`` names the model each size is taken from.
- Precision regimes (bytes per *trainable* parameter):
  ``mixed-bf16-adamw``: bf16 weights 2 + fp32 master copy 4 + bf16 gradients 2 + AdamW's two fp32 moments 8
  = 16 (18 with fp32 gradients), the usual mixed-precision recipe;
  ``fp32-adamw``: weights 4 + gradients 4 + moments 8 = 16 (what ``make bench-memory`` runs on the CPU);
  ``bf16-adamw``: weights 2 + gradients 2 + moments 4 = 8 (torch AdamW keeps its moments in the weights'
  dtype; what ``make bench-memory`` runs on a GPU).
- LoRA: the base is frozen at the weights' dtype (2 bytes/param in bf16) and has no gradients or optimizer
  state; rank-r adapters A (r x in) and B (out x r) on every linear layer of every block (DSPy's LocalProvider
  and PEFT ``target_modules="all-linear"``) train at the regime's full cost per adapter parameter.
- QLoRA: the blocks' linear weights in NF4, 4 bits each plus double-quantised block constants (8-bit
  absmax per 64 weights, fp32 constant per 256 blocks: 0.127 bits per weight) = 0.516 bytes/param;
  embeddings, the LM head and norms stay bf16. Adapters as LoRA (bf16 compute).
- Activations, after Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
  Models", 34·s·b·h + 5·a·s²·b bytes per layer for GPT) re-derived for a Llama block without dropout, in
  16-bit: per token and layer 2 norms' inputs 4h, the QKV input 2h, Q/K/V 2h + 4·kv, the attention output 2h,
  the MLP input 2h, gate, up, SiLU and product 8·i, i.e. 12h + 4kv + 8i bytes; without flash attention
  the scores and the softmax add 4·a·s bytes. fp32 activations double it. With gradient checkpointing
  (recompute every block) only each block's input 2h per token is kept, plus one block's activations
  during its recomputation. The logits: b·s·V·(2 + 4) bytes (bf16, and the fp32 upcast for the loss).
- The total sums every term: an upper bound on the peak, since gradients fill while activations are
  freed. Not modelled: the CUDA context (~0.5-1 GB), allocator caching and fragmentation, the optimizer
  step's temporary buffers, the data pipeline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

GB = 1e9
Mode = Literal["full", "lora", "qlora"]


@dataclass(frozen=True)
class Arch:
    """A Llama-style decoder's shapes."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool
    source: str = ""

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer of one block: q, k, v, o, gate, up, down."""
        h, kv, i = self.hidden, self.kv_dim, self.intermediate
        return [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]

    def block_linear_params(self) -> int:
        return self.layers * sum(a * b for a, b in self.linear_shapes())

    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    def norm_params(self) -> int:
        return (2 * self.layers + 1) * self.hidden

    def params(self) -> int:
        """Exact for a Llama-style model without biases (tied embeddings counted once)."""
        return self.block_linear_params() + self.embedding_params() + self.norm_params()

    def lora_params(self, rank: int) -> int:
        return self.layers * rank * sum(a + b for a, b in self.linear_shapes())


# Published shapes, one model per size the study's model-size table names (and 65B for the QLoRA paper).
ARCHS: dict[str, Arch] = {
    a.name: a
    for a in [
        Arch("1B", 2048, 16, 32, 8, 8192, 128256, True, "Llama-3.2-1B"),
        Arch("7B", 4096, 32, 32, 32, 11008, 32000, False, "Llama-2-7B"),
        Arch("13B", 5120, 40, 40, 40, 13824, 32000, False, "Llama-2-13B"),
        Arch("65B", 8192, 80, 64, 64, 22016, 32000, False, "LLaMA-65B (the QLoRA paper's model)"),
        Arch("70B", 8192, 80, 64, 8, 28672, 128256, False, "Llama-3.1-70B"),
        Arch("405B", 16384, 126, 128, 8, 53248, 128256, False, "Llama-3.1-405B"),
    ]
}


@dataclass(frozen=True)
class Regime:
    """Bytes per trainable parameter for each kind of state, and the dtype width of weights/activations."""

    name: str
    weights: float
    master: float
    grads: float
    optimizer: float
    act_bytes: int  # bytes per activation value

    @property
    def per_trainable(self) -> float:
        return self.weights + self.master + self.grads + self.optimizer


REGIMES: dict[str, Regime] = {
    r.name: r
    for r in [
        Regime("mixed-bf16-adamw", weights=2, master=4, grads=2, optimizer=8, act_bytes=2),
        Regime("fp32-adamw", weights=4, master=0, grads=4, optimizer=8, act_bytes=4),
        Regime("bf16-adamw", weights=2, master=0, grads=2, optimizer=4, act_bytes=2),
    ]
}

NF4_BYTES_PER_PARAM = 0.5 + 0.127 / 8  # 4-bit weights + double-quantised constants (QLoRA paper, section 3)


@dataclass(frozen=True)
class Config:
    """How a model is trained: what the activations and adapters depend on."""

    regime: str = "mixed-bf16-adamw"
    batch: int = 1
    seq: int = 512
    checkpointing: bool = True
    flash_attention: bool = True
    lora_rank: int = 32  # DSPy's LocalProvider (lm_local.py) and PEFT all-linear
    qlora_rank: int = 64  # the QLoRA paper

    def describe(self) -> str:
        return (f"{self.regime}, batch {self.batch} x {self.seq} tokens, gradient checkpointing "
                f"{'on' if self.checkpointing else 'off'}, flash attention {'on' if self.flash_attention else 'off'}, "
                f"LoRA rank {self.lora_rank}, QLoRA rank {self.qlora_rank}")


@dataclass(frozen=True)
class Estimate:
    """Bytes of each term; `total` sums them (an upper bound on the peak)."""

    model: str
    mode: str
    params: int
    trainable: int
    weights: float  # frozen or trained weights as stored for compute (incl. NF4 base)
    master: float
    grads: float
    optimizer: float
    activations: float | None  # None when only a parameter count is known
    logits: float | None
    config: str = ""
    terms: dict = field(default_factory=dict)

    @property
    def states(self) -> float:
        return self.weights + self.master + self.grads + self.optimizer

    @property
    def total(self) -> float:
        return self.states + (self.activations or 0.0) + (self.logits or 0.0)

    @property
    def total_gb(self) -> float:
        return self.total / GB

    @property
    def states_per_param(self) -> float:
        return self.states / self.params

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(states=self.states, total=self.total, total_gb=round(self.total_gb, 3),
                 states_per_param=round(self.states_per_param, 4))
        return d


def state_bytes(params: float, mode: Mode = "full", regime: str = "mixed-bf16-adamw",
                trainable: float | None = None) -> dict[str, float]:
    """Weights, master copy, gradients and optimizer state in bytes, from parameter counts alone.

    full: every parameter at the regime's cost. lora / qlora: the frozen base (regime's weight width, or
    NF4) plus `trainable` adapter parameters at the regime's full cost (0 adapters if not given)."""
    r = REGIMES[regime]
    if mode == "full":
        return {"weights": r.weights * params, "master": r.master * params, "grads": r.grads * params,
                "optimizer": r.optimizer * params}
    if mode not in ("lora", "qlora"):
        raise ValueError(f"mode must be full, lora or qlora, not {mode!r}")
    t = trainable or 0.0
    base = (NF4_BYTES_PER_PARAM if mode == "qlora" else r.weights) * params
    return {"weights": base + r.weights * t, "master": r.master * t, "grads": r.grads * t, "optimizer": r.optimizer * t}


def activation_bytes(arch: Arch, cfg: Config, act_bytes: int | None = None) -> tuple[float, float]:
    """(activations kept for the backward pass, logits) in bytes for one micro-batch."""
    width = act_bytes or REGIMES[cfg.regime].act_bytes
    scale = width / 2  # the per-token counts below are for 16-bit values
    h, kv, i, a, s, b = arch.hidden, arch.kv_dim, arch.intermediate, arch.heads, cfg.seq, cfg.batch
    per_token_layer = 12 * h + 4 * kv + 8 * i + (0 if cfg.flash_attention else 4 * a * s)
    one_block = per_token_layer * s * b * scale
    if cfg.checkpointing:
        acts = arch.layers * 2 * h * s * b * scale + one_block
    else:
        acts = arch.layers * one_block
    logits = b * s * arch.vocab * (width + 4)
    return acts, logits


def estimate(arch: Arch, mode: Mode, cfg: Config = Config(), regime: str | None = None) -> Estimate:
    """The memory of training `arch` in `mode` under `cfg`, term by term."""
    regime = regime or cfg.regime
    r = REGIMES[regime]
    params = arch.params()
    if mode == "full":
        trainable = params
        states = state_bytes(params, "full", regime)
    elif mode == "lora":
        trainable = arch.lora_params(cfg.lora_rank)
        states = state_bytes(params, "lora", regime, trainable)
    elif mode == "qlora":
        trainable = arch.lora_params(cfg.qlora_rank)
        quantised = arch.block_linear_params()
        kept = params - quantised  # embeddings, LM head, norms stay in the compute dtype
        states = state_bytes(quantised, "qlora", regime, trainable)
        states["weights"] += r.weights * kept
    else:
        raise ValueError(f"mode must be full, lora or qlora, not {mode!r}")
    acts, logits = activation_bytes(arch, cfg, r.act_bytes)
    return Estimate(model=arch.name, mode=mode, params=params, trainable=trainable, activations=acts, logits=logits,
                    config=Config(**{**asdict(cfg), "regime": regime}).describe(), **states)


def bytes_per_param(mode: Mode = "full", regime: str = "mixed-bf16-adamw") -> float:
    """States per parameter before activations (LoRA/QLoRA: the frozen base alone, adapters excluded)."""
    return sum(state_bytes(1.0, mode, regime).values())


def serving_bytes(arch: Arch, bytes_per_weight: float = 2.0) -> float:
    """Weights alone of a model served for inference (bf16 by default), without the KV cache."""
    return arch.params() * bytes_per_weight


def table(sizes: list[str], modes: list[str], cfg: Config = Config()) -> list[Estimate]:
    """Estimates for every size and mode (sizes are keys of ARCHS)."""
    unknown = [s for s in sizes if s not in ARCHS]
    if unknown:
        raise KeyError(f"no architecture for {unknown}; known: {', '.join(ARCHS)}")
    return [estimate(ARCHS[s], m, cfg) for s in sizes for m in modes]  # type: ignore[arg-type]


ASSUMPTIONS = [" ".join(item.split()) for item in (__doc__ or "").split("Assumptions, stated once:")[1]
               .split("\n- ") if item.strip()]
