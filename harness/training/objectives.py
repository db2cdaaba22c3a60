"""The two training objectives, as one weighted log-likelihood.

Both losses are ``-sum_i c_i * logp_i`` over sequences i, where ``logp_i`` is the log-probability
of sequence i's target tokens:

- SFT: ``logp_i`` is the *sum* over targets and ``c_i = 1 / (targets in the batch)``, i.e. the
  token-mean cross-entropy on the assistant tokens.
- GRPO: ``logp_i`` is the *mean* over the completion's tokens and ``c_i = A_i / N`` with the
  group-relative advantage ``A_i = (r_i - mean(r)) / (std(r) + eps)`` (population std of the group).

``backward_objective`` runs the forward/backward in chunks of sequences so large batches fit.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from harness.training.chat import Encoded, pad_batch


def group_advantages(rewards: Sequence[float], eps: float = 1e-4) -> list[float]:
    """Reward minus the group mean, divided by the group's (population) std plus eps."""
    n = len(rewards)
    if n == 0:
        return []
    mean = sum(rewards) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / n)
    return [(r - mean) / (std + eps) for r in rewards]


def sequence_logprobs(model: Any, ids: Any, attn: Any, mask: Any) -> tuple[Any, Any]:
    """Per sequence: the summed log-probability of its target tokens, and how many there are."""
    import torch.nn.functional as F

    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
    targets, m = ids[:, 1:], mask[:, 1:]
    lp = -F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return (lp * m).sum(-1), m.sum(-1)


def backward_objective(model: Any, seqs: Sequence[Encoded], coefs: Sequence[float], *, mean_per_sequence: bool,
                       chunk: int, pad_id: int, device: Any) -> float:
    """Accumulate gradients of ``-sum_i coefs[i] * logp_i``; returns the loss value."""
    import torch

    total = 0.0
    for start in range(0, len(seqs), max(1, chunk)):
        part = seqs[start:start + chunk]
        c = coefs[start:start + chunk]
        if not any(c):
            continue
        ids, attn, mask = pad_batch(part, pad_id, device)
        lp_sum, n = sequence_logprobs(model, ids, attn, mask)
        lp = lp_sum / n.clamp(min=1) if mean_per_sequence else lp_sum
        loss = -(torch.tensor(c, dtype=lp.dtype, device=lp.device) * lp).sum()
        loss.backward()
        total += float(loss.detach())
    return total
