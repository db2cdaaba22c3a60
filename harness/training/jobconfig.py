"""Hyperparameters of a training job, read from the ``train_kwargs`` DSPy passes through.

DSPy hands a provider whatever ``train_kwargs`` the optimizer was given. Both our own short names
and the names of DSPy's ``LocalProvider`` (dspy/clients/lm_local.py:165-173, e.g.
``num_train_epochs``, ``per_device_train_batch_size``) are understood; unknown keys are kept in
``ignored`` so a record can show them. GRPO adds ``num_generations`` itself (grpo.py:326).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

_ALIASES = {
    "epochs": ("num_train_epochs",),
    "batch_size": ("per_device_train_batch_size",),
    "grad_accum": ("gradient_accumulation_steps",),
    "learning_rate": ("lr",),
    "max_seq_len": ("max_seq_length",),
}
_DSPY_ONLY = {"use_peft", "packing", "bf16", "output_dir", "device", "num_generations"}


def _from_kwargs(cls: type, kwargs: dict[str, Any] | None) -> Any:
    names = {f.name for f in fields(cls)} - {"ignored"}
    values: dict[str, Any] = {}
    ignored: dict[str, Any] = {}
    for key, value in (kwargs or {}).items():
        name = next((n for n, alts in _ALIASES.items() if key in alts), key)
        if name in names:
            if value is not None:
                values[name] = value
        elif key not in _DSPY_ONLY:
            ignored[key] = value
    return cls(**values, ignored=ignored)


@dataclass
class SFTConfig:
    """Supervised fine-tuning. Defaults are DSPy LocalProvider's (5 epochs, batch 1 x 8 accumulation)."""

    epochs: int = 5
    batch_size: int = 1  # sequences per forward/backward
    grad_accum: int = 8  # forward/backwards per optimizer step
    learning_rate: float | None = None  # None: StudentRuntime.default_lr()
    max_steps: int | None = None  # optimizer steps at most
    max_seq_len: int | None = None  # None: the model's context
    max_grad_norm: float = 1.0
    seed: int = 0
    ignored: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any] | None) -> "SFTConfig":
        return _from_kwargs(cls, kwargs)


@dataclass
class GRPOConfig:
    """One GRPO job: how many steps and how long it may run before it ends GRPO's wait loop."""

    learning_rate: float | None = None
    max_steps: int = 100  # GRPO's own default num_train_steps (grpo.py:35)
    time_limit_s: float = 1800.0
    batch_size: int = 8  # sequences per forward/backward (gradients are accumulated over the step)
    max_seq_len: int | None = None
    max_grad_norm: float = 1.0
    eps: float = 1e-4  # added to the group std
    ignored: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any] | None) -> "GRPOConfig":
        return _from_kwargs(cls, kwargs)
