"""One live student in the run's process: weights with named versions, generation, checkpoints, figures.

DSPy names a fine-tuned model by a string (``lm.copy(model=new_name)``) and keeps using the same
engine, so the runtime maps *version names* to weights. There is one model in memory; a version's
trainable weights live either only in that model (while it is being trained), in a CPU copy, or in
a checkpoint folder under ``workdir/checkpoints``. Switching versions (``activate``) copies the
trainable weights in place, so an optimizer holding the parameters keeps working across switches.

Training runs in *jobs*: ``begin_training(from_version, kind)`` starts a new version from an
existing one, ``run_step`` applies one optimizer step to it (timed: this is ``train_s``), and
``end_training`` checkpoints it with ``save_pretrained`` (safetensors) and measures how far the
trainable weights moved from where the first job started.

Every method that reads or changes the weights holds one re-entrant lock: DSPy calls the engine from
several threads and runs fine-tuning in a thread of its own.

This module does not import dspy.
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from harness.training.chat import Message, encode_prompt
from harness.training.students import (
    SPECS,
    apply_mode,
    config_model,
    has_weights,
    is_local_path,
    local_model,
    local_tokenizer,
    param_counts,
    random_model,
    resolve_device,
)
from harness.training.tokenizer import ensure_chat_template, train_tokenizer


@dataclass
class StepResult:
    """What one training step did (returned by the step function given to ``run_step``)."""

    loss: float | None
    examples: int
    tokens: int
    target_tokens: int
    updated: bool = True  # False when the step had no signal (e.g. every GRPO group had equal rewards)


@dataclass
class Generation:
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" (end token) or "length" (max new tokens)


@dataclass
class TrainStats:
    """Running totals over every job of a runtime; becomes the record's ``TrainingInfo``."""

    steps: int = 0
    skipped_steps: int = 0
    examples: int = 0
    tokens: int = 0
    target_tokens: int = 0
    loss_first: float | None = None
    loss_last: float | None = None
    losses: list[float] = field(default_factory=list)
    train_s: float = 0.0
    jobs: int = 0
    checkpoints: int = 0
    checkpoint_bytes: int = 0
    checkpoint_s: float = 0.0
    param_change_rel: float | None = None
    gpu_peak_allocated_mb: float | None = None
    gpu_peak_reserved_mb: float | None = None
    gen_calls: int = 0
    gen_input_tokens: int = 0
    gen_output_tokens: int = 0
    gen_s: float = 0.0

    def record_step(self, r: StepResult, seconds: float) -> None:
        if not r.updated:
            self.skipped_steps += 1
            return
        self.steps += 1
        self.examples += r.examples
        self.tokens += r.tokens
        self.target_tokens += r.target_tokens
        self.train_s += seconds
        if r.loss is not None:
            self.loss_first = r.loss if self.loss_first is None else self.loss_first
            self.loss_last = r.loss
            self.losses.append(round(r.loss, 6))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class StudentRuntime:
    """A student model and tokenizer, its named weight versions, and what training it cost."""

    def __init__(self, model: Any, tokenizer: Any, *, base_name: str, student: str, mode: str, device: str,
                 workdir: str | Path, pretrained: bool, seed: int = 0, max_new_tokens: int = 64,
                 init: str | None = None):
        import torch

        self.model = model
        self.tokenizer = tokenizer
        self.base_name = base_name
        self.student = student
        self.mode = mode
        self.device = device
        self.dtype = next(model.parameters()).dtype
        self.workdir = Path(workdir)
        self.pretrained = pretrained
        self.init = init or ("pretrained" if pretrained else "toy")  # pretrained, config (random weights) or toy
        self.max_new_tokens = max_new_tokens
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 2048))
        self.total_params, self.trainable_params = param_counts(model)
        self.stats = TrainStats()
        self.lock = threading.RLock()
        self.current = base_name
        # version -> None (only in the live weights), dict (CPU copy of trainable weights) or Path (checkpoint)
        self._sources: dict[str, Any] = {base_name: None}
        self._theta0: dict[str, Any] | None = None
        self._counter = itertools.count(1)
        self._rng = torch.Generator(device=device).manual_seed(seed)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        # transformers 5.24 renamed the KV-cache argument `past_key_values` to `cache` (5.17 has the old name).
        self._cache_kw = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(cls, student: str = "tiny", *, corpus: Iterable[str] = (), cache_dir: str | Path, workdir: str | Path,
               mode: str = "full", device: str | None = None, seed: int = 0, merges: int = 4000,
               lora: dict[str, Any] | None = None, max_new_tokens: int = 64,
               threads: int | None = None) -> "StudentRuntime":
        """Build a student by registry name (tokenizer trained on `corpus`, cached in `cache_dir`) or local path.

        `threads` sets torch's intra-op threads for the whole process (None leaves them): a tiny
        model's kernels are too small to split, and on a loaded 2-core machine two threads made its
        training steps 10-40 times slower than one (waits for a descheduled thread).
        """
        import torch

        if threads:
            torch.set_num_threads(threads)
        device = resolve_device(device)
        if is_local_path(student):
            path = Path(student)
            if not (path / "config.json").exists():
                raise ValueError(f"student {student!r} is neither a registry name ({', '.join(SPECS)}) "
                                 "nor a local Hugging Face model directory")
            tok = ensure_chat_template(local_tokenizer(path))
            init = "pretrained" if has_weights(path) else "config"
            model = (local_model(path, device=device) if init == "pretrained"
                     else config_model(path, device=device, seed=seed))
            base_name = f"local/{_safe(path.name)}"
        else:
            tok = train_tokenizer(list(corpus), cache_dir, merges)
            model = random_model(SPECS[student], vocab_size=len(tok), device=device, seed=seed,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
            init, base_name = "toy", f"local/{student}"
        model = apply_mode(model, mode, lora)
        return cls(model, tok, base_name=base_name, student=student, mode=mode, device=device, workdir=workdir,
                   pretrained=init == "pretrained", seed=seed, max_new_tokens=max_new_tokens, init=init)

    # ------------------------------------------------------------------ versions

    def versions(self) -> list[str]:
        return list(self._sources)

    def trainable(self) -> list[tuple[str, Any]]:
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def _copy_trainable(self) -> dict[str, Any]:
        return {n: p.detach().to("cpu", copy=True) for n, p in self.trainable()}

    def _stash_current(self) -> None:
        """Keep the live weights of the current version before they are overwritten or trained."""
        if self._sources.get(self.current) is None:
            self._sources[self.current] = self._copy_trainable()

    def activate(self, name: str) -> None:
        """Make `name`'s weights the live ones."""
        with self.lock:
            if name == self.current:
                return
            if name not in self._sources:
                raise KeyError(f"unknown student model {name!r}; known: {', '.join(self._sources)}")
            self._stash_current()
            source = self._sources[name]
            if isinstance(source, Path):
                self._load_checkpoint(source)
            else:
                params = dict(self.trainable())
                for n, value in source.items():
                    params[n].data.copy_(value)
            self.current = name

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, name: str) -> tuple[Path, int]:
        """save_pretrained (safetensors) of the live weights; LoRA saves only the adapters."""
        with self.lock:
            t0 = time.perf_counter()
            path = self.workdir / "checkpoints" / _safe(name)
            self.model.save_pretrained(str(path))
            if self.mode == "full":  # a full checkpoint is a loadable student: give it its tokenizer
                self.tokenizer.save_pretrained(str(path))
            written = _dir_bytes(path)
            self.stats.checkpoints += 1
            self.stats.checkpoint_bytes += written
            self.stats.checkpoint_s += time.perf_counter() - t0
            return path, written

    def _load_checkpoint(self, path: Path) -> None:
        from safetensors.torch import load_file

        if self.mode == "lora":
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.model, load_file(str(path / "adapter_model.safetensors")))
            return
        state: dict[str, Any] = {}
        for f in sorted(path.glob("*.safetensors")):
            state.update(load_file(str(f), device=str(self.device)))
        result = self.model.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise RuntimeError(f"checkpoint {path} has unexpected weights: {result.unexpected_keys[:5]}")

    # ------------------------------------------------------------------ training jobs

    def begin_training(self, from_version: str, kind: str) -> str:
        """Start a job on `from_version`'s weights; returns the name of the version it trains."""
        import torch

        with self.lock:
            self.activate(from_version)
            self._stash_current()
            if self._theta0 is None:  # the weights before any training: reuse the stash when it is in memory
                source = self._sources[from_version]
                self._theta0 = source if isinstance(source, dict) else self._copy_trainable()
            name = f"{self.base_name}-{kind}{next(self._counter)}"
            self._sources[name] = None
            self.current = name
            self.stats.jobs += 1
            if self.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            return name

    def run_step(self, version: str, step: Callable[[], StepResult]) -> StepResult:
        """Run one optimizer step on `version` (timed into ``train_s``)."""
        with self.lock:
            self.activate(version)
            self.model.train()
            t0 = time.perf_counter()
            result = step()
            self._sync()
            self.stats.record_step(result, time.perf_counter() - t0)
            self._sources[version] = None  # the live weights are now newer than any stash of this version
            return result

    def end_training(self, version: str) -> Path:
        """Checkpoint the trained version and update the parameter change and GPU peaks."""
        import torch

        with self.lock:
            self.activate(version)
            path, _ = self.save_checkpoint(version)
            self._sources[version] = path
            self.stats.param_change_rel = self.param_change()
            if self.device.startswith("cuda"):
                mb = 1024 * 1024
                self.stats.gpu_peak_allocated_mb = max(self.stats.gpu_peak_allocated_mb or 0.0,
                                                       torch.cuda.max_memory_allocated() / mb)
                self.stats.gpu_peak_reserved_mb = max(self.stats.gpu_peak_reserved_mb or 0.0,
                                                      torch.cuda.max_memory_reserved() / mb)
            return path

    def default_lr(self) -> float:
        """DSPy's 1e-5 for a pretrained full fine-tune (dspy/clients/lm_local.py:171), 1e-4 for its LoRA;
        a random-initialised student learns nothing at those rates in a few steps, so it uses 1e-3."""
        if not self.pretrained:
            return 1e-3
        return 1e-4 if self.mode == "lora" else 1e-5

    def optimizer(self, lr: float | None = None) -> Any:
        """AdamW (no weight decay) over the trainable weights; its states take the weights' dtype."""
        import torch

        return torch.optim.AdamW([p for _, p in self.trainable()], lr=lr or self.default_lr(), weight_decay=0.0)

    def apply_update(self, optimizer: Any, max_grad_norm: float | None = 1.0) -> None:
        """Clip the gradient norm (HF Trainer's default of 1.0), step, and clear the gradients."""
        import torch

        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for _, p in self.trainable()], max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def param_change(self) -> float | None:
        """||theta_now - theta_before|| / ||theta_before|| over the trainable weights (live version)."""
        if self._theta0 is None:
            return None
        num = den = 0.0
        for n, p in self.trainable():
            before = self._theta0[n].float()
            num += float((p.detach().float().cpu() - before).pow(2).sum())
            den += float(before.pow(2).sum())
        return math.sqrt(num) / math.sqrt(den) if den else None

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    # ------------------------------------------------------------------ generation

    def generate(self, version: str, messages: Sequence[Message], *, temperature: float | None = None,
                 max_new_tokens: int | None = None) -> Generation:
        """Greedy (temperature 0/None) or sampled continuation of the chat, with a KV cache."""
        import torch

        with self.lock, torch.no_grad():
            self.activate(version)
            was_training = self.model.training
            self.model.eval()
            t0 = time.perf_counter()
            cap = max(1, min(max_new_tokens or self.max_new_tokens, self.max_new_tokens, self.max_positions // 2))
            prompt = encode_prompt(self.tokenizer, messages, max_len=self.max_positions - cap)
            eos = self.tokenizer.eos_token_id
            inputs = torch.tensor([prompt], dtype=torch.long, device=self.device)
            cache, out_ids, finish = None, [], "length"
            for _ in range(cap):
                kwargs = {self._cache_kw: cache} if cache is not None else {}
                out = self.model(input_ids=inputs, use_cache=True, **kwargs)
                cache = out["cache"] if "cache" in out else out["past_key_values"]
                token = self._pick(out.logits[0, -1].float(), temperature)
                if token == eos:
                    finish = "stop"
                    break
                out_ids.append(token)
                inputs = torch.tensor([[token]], dtype=torch.long, device=self.device)
            self.model.train(was_training)
            text = self.tokenizer.decode(out_ids, skip_special_tokens=True)
            n_out = len(out_ids) + (finish == "stop")
            s = self.stats
            s.gen_calls, s.gen_input_tokens, s.gen_output_tokens = s.gen_calls + 1, s.gen_input_tokens + len(prompt), \
                s.gen_output_tokens + n_out
            s.gen_s += time.perf_counter() - t0
            return Generation(text, len(prompt), n_out, finish)

    def _pick(self, logits: Any, temperature: float | None) -> int:
        import torch

        if not temperature:
            return int(logits.argmax())
        probs = torch.softmax(logits / temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self._rng))

    # ------------------------------------------------------------------ figures

    def training_info(self) -> Any:
        """The record's ``TrainingInfo`` for everything this runtime trained."""
        from harness.record import TrainingInfo

        s = self.stats
        extra = {
            "skipped_steps": s.skipped_steps,
            "target_tokens": s.target_tokens,
            "losses": s.losses[-200:],
            "checkpoints": s.checkpoints,
            "checkpoint_s": round(s.checkpoint_s, 4),
            "versions": self.versions(),
            "pretrained": self.pretrained,
            # pretrained: real weights; config: a real model's architecture and size, random weights (its memory
            # and step time are that model's, its scores are not); toy: the random registry student
            "init": self.init,
            "student_calls": s.gen_calls,
            "student_input_tokens": s.gen_input_tokens,
            "student_output_tokens": s.gen_output_tokens,
            "student_generate_s": round(s.gen_s, 4),
            "max_new_tokens": self.max_new_tokens,
            "vocab_size": len(self.tokenizer),
        }
        if s.gpu_peak_allocated_mb is not None:
            extra["gpu_train_peak_allocated_mb"] = round(s.gpu_peak_allocated_mb, 1)
            extra["gpu_train_peak_reserved_mb"] = round(s.gpu_peak_reserved_mb or 0.0, 1)
        return TrainingInfo(
            student=self.student, mode=self.mode, device=self.device, dtype=str(self.dtype).replace("torch.", ""),
            total_params=self.total_params, trainable_params=self.trainable_params, steps=s.steps,
            examples=s.examples, tokens=s.tokens, loss_first=s.loss_first, loss_last=s.loss_last,
            train_s=round(s.train_s, 4), param_change_rel=s.param_change_rel, checkpoint_bytes=s.checkpoint_bytes,
            jobs=s.jobs, extra=extra,
        )
