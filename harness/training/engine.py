"""A DSPy custom engine that answers with the student's current weights.

DSPy 3.4's engine contract (dspy/clients/engines/base.py): ``complete(Request) -> Response``
carrying ``Usage(input_tokens, output_tokens, total_tokens)``, plus ``stream`` and ``close``. The
request's ``model`` is the LM's model string, so after ``lm.copy(model=new_name)`` the same engine
serves the fine-tuned version: ``StudentRuntime.generate`` switches weights by name.

Token counts are the student tokenizer's. Greedy when the temperature is 0 or None, sampling
otherwise; at most ``runtime.max_new_tokens`` new tokens (``Config.max_tokens`` may lower it).
"""

from __future__ import annotations

from typing import Any

from dspy.clients.engines.base import validate_request
from dspy.lm15 import Message, Request, Response, TextPart, Usage, response_to_events

from harness.training.chat import chat_message
from harness.training.runtime import StudentRuntime


def request_messages(request: Request) -> list[dict[str, str]]:
    """The request as chat messages: the system prompt first, then each text message."""
    messages = []
    if request.system is not None:
        system = request.system if isinstance(request.system, str) else "".join(p.text for p in request.system)
        messages.append({"role": "system", "content": system})
    return messages + [chat_message(m.role, m.text) for m in request.messages]


class StudentEngine:
    """Serves `runtime`'s versions by model name. Shared, never copied (see ``__deepcopy__``)."""

    harness_uncounted = True  # its calls are the student's, not the run's LM's (harness.lm.usage.uncounted)

    def __init__(self, runtime: StudentRuntime):
        self.runtime = runtime

    def complete(self, request: Request) -> Response:
        validate_request(request)
        g = self.runtime.generate(request.model, request_messages(request), temperature=request.config.temperature,
                                  max_new_tokens=request.config.max_tokens)
        return Response(
            id=None,
            model=request.model,
            message=Message.assistant((TextPart(g.text),)),
            finish_reason=g.finish_reason,
            usage=Usage(input_tokens=g.input_tokens, output_tokens=g.output_tokens,
                        total_tokens=g.input_tokens + g.output_tokens),
        )

    def stream(self, request: Request) -> Any:
        return response_to_events(self.complete(request))

    def close(self) -> None:
        """The runtime belongs to the run, not to one LM: nothing to close."""

    def __deepcopy__(self, memo: dict) -> "StudentEngine":
        # Module.deepcopy() deep-copies each predictor's LM and with it the engine
        # (dspy/primitives/base_module.py:120); BetterTogether does so for every candidate
        # (dspy/teleprompt/bettertogether.py:604). A copy would duplicate the model and stop
        # following training, so the engine is shared like the handle it is.
        return self
