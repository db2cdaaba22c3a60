"""The student as a DSPy LM in the ``forward()`` form, for DSPy releases before 3.4 (no engine contract).

DSPy 2.6 to 3.3 call a custom LM through ``BaseLM.__call__`` -> ``self.forward(prompt, messages, **kwargs)``,
which must return a response shaped like OpenAI's chat completion (those releases read ``choices``,
``usage``, ``model`` from LiteLLM's ``ModelResponse``; 3.3 normalises the same object). This subclass of
``dspy.LM`` answers with the student's current weights as ``harness.training.engine.StudentEngine`` does on
3.4: greedy at temperature 0/None, sampled otherwise, at most ``runtime.max_new_tokens`` new tokens, one
generation per choice (``n``). Its provider is the same ``LocalTrainingProvider``, so ``lm.finetune`` and
GRPO's ``lm.reinforce`` train the same runtime, and ``lm.copy(model=<version>)`` serves that version.

The runtime is reached through the provider (which deep-copies to itself), so copies of this LM share it.
LiteLLM is imported only here: every release before 3.4 depends on it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import dspy

from harness.training.chat import chat_message


class StudentForwardLM(dspy.LM):
    """``dspy.LM("local/<student>")`` in the pre-3.4 form: ``forward`` generates with the provider's runtime."""

    def forward(self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any):
        from litellm import ModelResponse

        settings = {**self.kwargs, **kwargs}
        runtime = self.provider.runtime
        asked = messages or [{"role": "user", "content": prompt}]
        chat = [chat_message(m.get("role", "user"), m.get("content")) for m in asked]
        choices, n_in, n_out = [], 0, 0
        for i in range(int(settings.get("n") or 1)):
            g = runtime.generate(self.model, chat, temperature=settings.get("temperature"),
                                 max_new_tokens=settings.get("max_tokens"))
            choices.append({"index": i, "finish_reason": g.finish_reason,
                            "message": {"role": "assistant", "content": g.text}})
            n_in, n_out = g.input_tokens, n_out + g.output_tokens  # (the prompt is read once per choice: the same)
        return ModelResponse(id=f"student-{uuid.uuid4().hex[:12]}", created=int(time.time()), model=self.model,
                             choices=choices, usage={"prompt_tokens": n_in, "completion_tokens": n_out,
                                                     "total_tokens": n_in + n_out})

    async def aforward(self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None,
                       **kwargs: Any):
        return self.forward(prompt=prompt, messages=messages, **kwargs)
