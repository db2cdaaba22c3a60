"""Supervised fine-tuning on chat traces: what ``dspy.BootstrapFinetune`` asks a provider for.

The loss is the token-mean cross-entropy on the assistant tokens only (every assistant message,
so demos given as user/assistant turns are learned too, as in DSPy's own SFT encoding,
dspy/clients/lm_local.py:362-440). Each optimizer step sees ``batch_size * grad_accum`` sequences;
an epoch is a seeded shuffle of the data.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from harness.training.chat import Encoded, encode_chat
from harness.training.jobconfig import SFTConfig
from harness.training.objectives import backward_objective
from harness.training.runtime import StepResult, StudentRuntime


def encode_sft_data(runtime: StudentRuntime, train_data: Sequence[dict[str, Any]], max_len: int) -> list[Encoded]:
    """Chat-format examples ({"messages": [...]}) to sequences with at least one target token."""
    seqs = []
    for item in train_data:
        if not isinstance(item, dict) or not isinstance(item.get("messages"), list):
            raise ValueError(f'SFT data must be {{"messages": [...]}} items, got {str(item)[:80]}')
        enc = encode_chat(runtime.tokenizer, item["messages"], max_len=max_len, target="assistant")
        if enc.n_targets:
            seqs.append(enc)
    return seqs


def batches(n: int, cfg: SFTConfig) -> list[list[int]]:
    """Index batches of one optimizer step each, epoch after epoch, at most ``cfg.max_steps``."""
    per_step = max(1, cfg.batch_size * cfg.grad_accum)
    rng = random.Random(cfg.seed)
    out: list[list[int]] = []
    for _ in range(cfg.epochs):
        order = list(range(n))
        rng.shuffle(order)
        out += [order[i:i + per_step] for i in range(0, n, per_step)]
    return out[: cfg.max_steps] if cfg.max_steps is not None else out


def run_sft(runtime: StudentRuntime, from_version: str, train_data: Sequence[dict[str, Any]],
            cfg: SFTConfig) -> str:
    """Train a new version from `from_version` on `train_data`; returns its model name.

    With no usable example (e.g. the metric rejected every trace) no step is taken and the new
    version equals the old one; it is still a job and is checkpointed.
    """
    max_len = min(cfg.max_seq_len or runtime.max_positions, runtime.max_positions)
    seqs = encode_sft_data(runtime, train_data, max_len)
    version = runtime.begin_training(from_version, "ft")
    optimizer = runtime.optimizer(cfg.learning_rate)
    pad = runtime.tokenizer.pad_token_id

    def step(batch: list[Encoded]) -> StepResult:
        targets = sum(s.n_targets for s in batch)
        loss = backward_objective(runtime.model, batch, [1.0 / targets] * len(batch), mean_per_sequence=False,
                                  chunk=cfg.batch_size, pad_id=pad, device=runtime.device)
        runtime.apply_update(optimizer, cfg.max_grad_norm)
        return StepResult(loss, len(batch), sum(len(s.ids) for s in batch), targets)

    for idx in batches(len(seqs), cfg):
        runtime.run_step(version, lambda idx=idx: step([seqs[i] for i in idx]))
    runtime.end_training(version)
    return version

