"""A DSPy training Provider that trains the student in this process: SFT and GRPO.

``dspy.BootstrapFinetune`` calls ``lm.finetune(...)`` (dspy/clients/lm.py), which runs
``provider.finetune(job, model, train_data, train_data_format, train_kwargs)`` in a thread and then
``lm.copy(model=<returned name>)``: the new name is a runtime version, served by the same engine.

``dspy.teleprompt.grpo.GRPO`` builds ``provider.ReinforceJob(lm=, train_kwargs=)``, calls
``initialize()``, then per training step ``get_status()`` (waiting, in a loop with no timeout, until
``pending_batch_ids`` holds an id it has not fulfilled: grpo.py:360-370) and ``step(train_data)``,
and finally ``terminate()``. The job offers one batch id at a time. Once it has taken
``max_steps`` steps or run ``time_limit_s`` seconds, it checkpoints its version and raises
``ReinforceLimitReached`` from ``get_status()``: the only way to end GRPO's wait loop cleanly.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from dspy.clients.provider import Provider, ReinforceJob, TrainingJob
from dspy.clients.utils_finetune import TrainDataFormat, TrainingStatus

from harness.training.jobconfig import GRPOConfig, SFTConfig
from harness.training.rl import GRPOUpdater
from harness.training.runtime import StudentRuntime
from harness.training.sft import run_sft


class ReinforceLimitReached(RuntimeError):
    """A GRPO job reached its step or time limit; raised from ``get_status`` to end GRPO's wait."""

    def __init__(self, reason: str, job: "LocalReinforceJob"):
        super().__init__(reason)
        self.reason = reason
        self.job = job


class LocalTrainingJob(TrainingJob):
    """DSPy's future for one fine-tuning job; ``status()`` follows the provider's progress."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.training_status = TrainingStatus.not_started

    def status(self) -> TrainingStatus:
        return self.training_status


class LocalReinforceJob(ReinforceJob):
    """One GRPO job: a new student version trained in place; the LM's model name follows it."""

    def __init__(self, lm: Any, train_kwargs: dict[str, Any] | None = None):
        super().__init__(lm, train_kwargs)
        provider: LocalTrainingProvider = lm.provider
        self.runtime: StudentRuntime = provider.runtime
        self.cfg = GRPOConfig.from_kwargs({**provider.grpo_defaults, **self.train_kwargs})
        self.job_id = f"grpo-{uuid.uuid4().hex[:8]}"
        self.updater: GRPOUpdater | None = None
        self.steps = 0
        self.next_batch_id = 0
        self.started = time.monotonic()
        self.stop_reason: str | None = None

    def initialize(self) -> None:
        self.updater = GRPOUpdater(self.runtime, self.lm.model, self.cfg)
        # GRPO expects the job to update the LM's model in place (grpo.py:523-536): rollouts and the
        # student program then use the version being trained.
        self.lm.model = self.updater.version
        self.started = time.monotonic()

    def _limit_reason(self) -> str | None:
        if self.steps >= self.cfg.max_steps:
            return f"step limit ({self.cfg.max_steps} steps) reached"
        elapsed = time.monotonic() - self.started
        if elapsed > self.cfg.time_limit_s:
            return f"time limit ({self.cfg.time_limit_s:g} s) reached after {self.steps} steps"
        return None

    def _status(self, pending: list[int]) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": "finished" if self.stop_reason else "running",
            "current_model": self.lm.model,
            "checkpoints": dict(self.checkpoints),
            "last_checkpoint": self.last_checkpoint,
            "pending_batch_ids": pending,
        }

    def get_status(self) -> dict[str, Any]:
        """GRPOStatus with the one batch id the job waits for; raises once a limit is reached."""
        reason = self.stop_reason or self._limit_reason()
        if reason:
            self._finish(reason)
            raise ReinforceLimitReached(reason, self)
        return self._status([self.next_batch_id])

    def status(self) -> dict[str, Any]:
        return self._status([] if self.stop_reason else [self.next_batch_id])

    def step(self, train_data: list[Any], train_data_format: Any = None) -> None:
        """One update from GRPO's groups: ``{"batch_id", "group"}`` items (DSPy 3.0 and later) or bare groups
        (2.6.x, which never asks ``get_status``: the limits are checked here too)."""
        if self.updater is None or self.stop_reason:
            raise RuntimeError(f"GRPO job {self.job_id} is not running")
        if train_data_format not in (None, TrainDataFormat.GRPO_CHAT, TrainDataFormat.GRPO_CHAT.value):
            raise ValueError(f"the local GRPO job trains on {TrainDataFormat.GRPO_CHAT.value} data, "
                             f"not {train_data_format}")
        reason = self._limit_reason()
        if reason:
            self._finish(reason)
            raise ReinforceLimitReached(reason, self)
        batched = [item for item in train_data if isinstance(item, dict) and "group" in item]
        self.updater.step([item["group"] for item in batched] if batched else list(train_data))
        self.steps += 1
        ids = [item["batch_id"] for item in batched if item.get("batch_id") is not None]
        self.next_batch_id = max([self.next_batch_id + 1, *(i + 1 for i in ids)])

    def update_model(self) -> None:
        """DSPy 2.6's GRPO asks the job to serve its latest weights every ``update_interval`` steps: this job trains
        the version it serves in place, so there is nothing to do."""

    def save_checkpoint(self, checkpoint_name: str) -> None:
        path, _ = self.runtime.save_checkpoint(f"{self.lm.model}-{checkpoint_name}")
        self.checkpoints[checkpoint_name] = str(path)
        self.last_checkpoint = checkpoint_name

    def terminate(self) -> None:
        self._finish("terminated")

    def cancel(self) -> None:
        self._finish("cancelled")

    def _finish(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            if self.updater is not None:
                self.updater.finish()


class LocalTrainingProvider(Provider):
    """Fine-tunes (SFT) and reinforces (GRPO) a StudentRuntime in this process."""

    harness_uncounted = True  # its calls are the student's, not the run's LM's (harness.lm.usage.uncounted)

    def __init__(self, runtime: StudentRuntime, sft_defaults: dict[str, Any] | None = None,
                 grpo_defaults: dict[str, Any] | None = None):
        super().__init__()
        self.finetunable = True
        self.reinforceable = True
        self.TrainingJob = LocalTrainingJob
        self.ReinforceJob = LocalReinforceJob
        self.runtime = runtime
        self.sft_defaults = dict(sft_defaults or {})
        self.grpo_defaults = dict(grpo_defaults or {})

    def finetune(self, job: LocalTrainingJob, model: str, train_data: list[dict[str, Any]],
                 train_data_format: Any, train_kwargs: dict[str, Any] | None = None) -> str:
        if train_data_format not in (TrainDataFormat.CHAT, TrainDataFormat.CHAT.value):
            raise ValueError(f"the local provider fine-tunes on chat data, not {train_data_format}")
        job.training_status = TrainingStatus.running
        try:
            name = run_sft(self.runtime, model, train_data, SFTConfig.from_kwargs({**self.sft_defaults,
                                                                                    **(train_kwargs or {})}))
        except BaseException:
            job.training_status = TrainingStatus.failed
            raise
        job.training_status = TrainingStatus.succeeded
        return name

    def __deepcopy__(self, memo: dict) -> "LocalTrainingProvider":
        # Deep-copying a program deep-copies its LMs (dspy/primitives/base_module.py:120) and so
        # this provider; it stands for the one runtime, so copies share it (as the engine does).
        return self
