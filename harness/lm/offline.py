"""The embedded offline LM: DSPy's own ``dspy.LM`` client with a custom engine (DSPy 3.4's contract).

DSPy's adapters, retries, history, callbacks and threading run exactly as against a provider;
only the engine's ``complete(Request) -> Response`` is ours. Calls and tokens are counted here,
where they are served, with the reference model's real tokenizer (tiktoken, offline), and
priced at the reference model's price from DSPy's bundled table.
"""

from __future__ import annotations

import threading
import time

from harness.lm.brain import Brain, Calibration, prefix_key
from harness.lm.memo import Memo
from harness.lm.tokens import TokenCounter
from harness.lm.usage import COUNTER, UsageCounter, failure_counting_callback

OFFLINE_MODEL = "offline/simulated"

_local = threading.local()


def _rollout_of(instance, inputs):
    """The rollout_id DSPy gives a call: in its arguments, else on the LM (lm.copy(rollout_id=...))."""
    rid = inputs.get("rollout_id") if isinstance(inputs, dict) else None
    return rid if rid is not None else getattr(instance, "kwargs", {}).get("rollout_id")


def _rollout_callback():
    """A DSPy callback that tells the engine which rollout a call belongs to.

    The engine never sees ``rollout_id`` (DSPy strips it before the request), but DSPy calls
    ``on_lm_start`` in the calling thread right before the engine, with the LM instance.
    """
    class RolloutTag(failure_counting_callback()):  # it also counts failed calls: no second callback to dispatch
        def on_lm_start(self, call_id, instance, inputs):
            _local.rollout = _rollout_of(instance, inputs)
            super().on_lm_start(call_id, instance, inputs)

        def on_lm_end(self, call_id, outputs, exception=None):
            _local.rollout = None
            super().on_lm_end(call_id, outputs, exception)

    return RolloutTag()


def tag_rollouts_over_http() -> None:
    """The offline LM over HTTP samples as in process: DSPy never sends a call's ``rollout_id`` (MIPROv2, InferRules
    and SIMBA sample by it), so the callback that reads it for the in-process engine is installed here too, and each
    request the run's HTTP client sends (httpx, under litellm and the OpenAI SDK; lm15's own transport in DSPy 3.4)
    carries it in a header the offline server reads (harness.lm.serving.ROLLOUT_HEADER). Only for the offline LM's own
    server: the run's process talks to no other."""
    import dspy
    import httpx

    from harness.lm.serving import ROLLOUT_HEADER

    from dspy.utils.callback import BaseCallback

    class RolloutOnly(BaseCallback):  # (beside the real LM's counting callback, which stays)
        def on_lm_start(self, call_id, instance, inputs):
            _local.rollout = _rollout_of(instance, inputs)

        def on_lm_end(self, call_id, outputs, exception=None):
            _local.rollout = None

    dspy.configure(callbacks=[*dspy.settings.callbacks, RolloutOnly()])

    def with_header(request):  # httpx's Request: headers in place
        rid = getattr(_local, "rollout", None)
        if rid is not None:
            request.headers[ROLLOUT_HEADER] = str(rid)
        return request

    def with_header_lm15(request):  # lm15's TransportRequest (DSPy 3.4's own client): headers a list of pairs
        rid = getattr(_local, "rollout", None)
        if rid is not None:
            request.headers = [*request.headers, (ROLLOUT_HEADER, str(rid))]
        return request

    _wrap_first_arg(httpx.Client, "send", with_header)  # litellm and the OpenAI SDK (every DSPy release)
    try:
        from dspy._vendor.lm15.transports._sync import StdlibTransport  # DSPy 3.4's lm15 engine
    except ImportError:
        return
    _wrap_first_arg(StdlibTransport, "stream", with_header_lm15)


def _wrap_first_arg(cls, name: str, change) -> None:
    """cls.name(self, request, ...) calls change(request) first (once per class, however often asked)."""
    method = getattr(cls, name)
    if getattr(method, "_harness_rollout", False):
        return

    def wrapped(self, request, *args, **kwargs):
        return method(self, change(request), *args, **kwargs)

    wrapped._harness_rollout = True
    setattr(cls, name, wrapped)


OPTIMIZER_PROMPTS = UsageCounter()  # the offline LM's calls that answered an optimizer's own prompt (Brain.respond)


class OfflineEngine:
    """Serves completions from :class:`Brain`; counts calls, tokens and its own time."""

    def __init__(self, brain: Brain, tokens: TokenCounter, counter: UsageCounter = COUNTER) -> None:
        self.brain, self.tokens, self.counter = brain, tokens, counter
        self._seen: dict[str, int] = {}
        self._prefix_counts = Memo(4096)
        self._lock = threading.Lock()

    def __deepcopy__(self, memo):  # programs get deep-copied by optimizers; the engine is shared
        return self

    def _salt(self, system: str, messages: list[tuple[str, str]], temperature: float | None) -> str:
        if not temperature:
            return "t0"
        rid = getattr(_local, "rollout", None)
        if rid is not None:
            return f"r{rid}"
        key = f"{temperature}|{system}|{messages}"
        with self._lock:  # the same request sampled again gets the next draw
            n = self._seen.get(key, 0)
            self._seen[key] = n + 1
        return f"s{n}"

    def _prefix_tokens(self, key: str, system: str, messages: list[tuple[str, str]]) -> int:
        """Tokens of the system prompt and every turn but the last (without reply priming), once per prefix."""
        n = self._prefix_counts.get(key)
        if n is None:
            turns = [("system", system), *messages[:-1]] if system else messages[:-1]
            n = self._prefix_counts.put(key, self.tokens.messages(turns) - self.tokens.REPLY_PRIMING if turns else 0)
        return n

    def complete(self, request):
        from dspy.lm15 import Message, Response, TextPart, Usage

        t0 = time.thread_time()  # this thread's CPU: waiting for the GIL while other threads run is not ours
        system = request.system if isinstance(request.system, str) or request.system is None \
            else "".join(p.text for p in request.system)
        system = system or ""
        messages = [(m.role, m.text or "") for m in request.messages]
        key = prefix_key(system, messages)
        text, role = self.brain.respond(system, messages, self._salt(system, messages, request.config.temperature),
                                        key)
        n_in = self._prefix_tokens(key, system, messages) + self.tokens.messages(messages[-1:]) if messages \
            else self.tokens.messages([("system", system)])
        n_out = self.tokens.text(text)
        self.counter.add(calls=1, input_tokens=n_in, output_tokens=n_out, engine_s=time.thread_time() - t0)
        if role == "optimizer":  # the optimizer's own prompts, apart (what a separate prompt LM would serve)
            OPTIMIZER_PROMPTS.add(calls=1, input_tokens=n_in, output_tokens=n_out, propagate=False)
        return Response(id=None, model=request.model, message=Message.assistant([TextPart(text)]),
                        finish_reason="stop", usage=Usage(input_tokens=n_in, output_tokens=n_out,
                                                          total_tokens=n_in + n_out))

    def stream(self, request):
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass


def make_offline_lm(oracle=None, price_as: str = "openai/gpt-4o-mini", counter: UsageCounter = COUNTER,
                    calibration: Calibration | None = None, **kwargs):
    """A dspy.LM served by the offline engine, counting into `counter` and priced as `price_as`; `calibration`:
    answer with a named real model's format failures and accuracy (harness.fidelity)."""
    import dspy

    from harness.lm.pricing import price_of

    counter.price = OPTIMIZER_PROMPTS.price = price_of(price_as)
    engine = OfflineEngine(Brain(oracle, calibration=calibration), TokenCounter(price_as), counter)
    lm = dspy.LM(OFFLINE_MODEL, engine=engine, cache=False, **kwargs)
    callbacks = [c for c in dspy.settings.callbacks if not isinstance(c, failure_counting_callback())]
    dspy.configure(callbacks=[*callbacks, _rollout_callback()])
    return lm
