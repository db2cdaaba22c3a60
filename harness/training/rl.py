"""Group-relative policy-gradient updates on the rollouts and rewards that DSPy's GRPO sends.

For each group (the completions of one prompt) the advantage of completion i is
``A_i = (r_i - mean(r)) / (std(r) + eps)``; the step minimises
``-(1/N) * sum_i A_i * mean_t log p(completion_i[t] | prompt_i, completion_i[<t])`` over all N
completions of the step, then takes one AdamW step. There is no reference model, KL term or
ratio clipping: each batch is used once, straight after it was sampled (on-policy REINFORCE with a
group baseline). A step whose groups all have equal rewards carries no signal and is skipped.
"""

from __future__ import annotations

from typing import Any, Sequence

from harness.training.chat import encode_chat
from harness.training.jobconfig import GRPOConfig
from harness.training.objectives import backward_objective, group_advantages
from harness.training.runtime import StepResult, StudentRuntime


class GRPOUpdater:
    """One GRPO job on a runtime: a new version trained in place, step after step."""

    def __init__(self, runtime: StudentRuntime, from_version: str, cfg: GRPOConfig):
        self.runtime = runtime
        self.cfg = cfg
        self.version = runtime.begin_training(from_version, "grpo")
        self.optimizer = runtime.optimizer(cfg.learning_rate)
        self.max_len = min(cfg.max_seq_len or runtime.max_positions, runtime.max_positions)

    def step(self, groups: Sequence[Sequence[dict[str, Any]]]) -> StepResult:
        """`groups`: lists of {"messages", "completion": {"role", "content"}, "reward"}."""
        seqs, advantages = [], []
        for group in groups:
            adv = group_advantages([float(item["reward"]) for item in group], self.cfg.eps)
            for item, a in zip(group, adv):
                enc = encode_chat(self.runtime.tokenizer, [*item["messages"], item["completion"]],
                                  max_len=self.max_len, target="last")
                if enc.n_targets:
                    seqs.append(enc)
                    advantages.append(a)
        n = len(seqs)
        coefs = [a / n for a in advantages]
        tokens, targets = sum(len(s.ids) for s in seqs), sum(s.n_targets for s in seqs)

        def update() -> StepResult:
            if not any(coefs):
                return StepResult(None, n, tokens, targets, updated=False)
            loss = backward_objective(self.runtime.model, seqs, coefs, mean_per_sequence=True,
                                      chunk=self.cfg.batch_size, pad_id=self.runtime.tokenizer.pad_token_id,
                                      device=self.runtime.device)
            self.runtime.apply_update(self.optimizer, self.cfg.max_grad_norm)
            return StepResult(loss, n, tokens, targets)

        return self.runtime.run_step(self.version, update)

    def finish(self) -> Any:
        """Checkpoint the trained version; returns the checkpoint folder."""
        return self.runtime.end_training(self.version)
