"""Calls, tokens and failures counted where they are served or fail, in one process-wide, thread-safe counter.

* The offline LM counts in its engine: every completion it serves.
* A real LM is counted by :class:`ServedUsageTracker`, installed as DSPy's global usage
  tracker. DSPy's own ``track_usage`` loses calls made in threads because the parallelizer
  deep-copies the tracker per thread (dspy/utils/parallelizer.py:128-130); this tracker's
  ``__deepcopy__`` returns itself, so every thread adds to the same counter. Completions are
  counted from the ``on_lm_end`` callback (one DSPy call with n>1 serves n completions). A served
  call whose response carried no token usage is counted apart: the tokens are then not measured
  (``None``), never a partial sum or 0.
* Failures (both LMs) are counted by the LM's own DSPy callback (:func:`failure_counting_callback`), in
  the thread that made the call: an ``on_lm_end`` with an exception is one DSPy LM call that failed after DSPy's own retries, by kind
  (:func:`failure_kind`); an ``on_adapter_parse_end`` with an exception is one served answer the
  adapter could not parse. Retries are counted where DSPy 3.4 waits before one
  (``dspy.clients.execution._delay``, called once per retry by both its sync and async paths): each
  is one more request sent to the server. Examples that errored in an evaluation are counted by the
  run's process (``harness.child.evaluate``).
* A second, prompt LM (``--prompt-lm``: the LM an optimizer writes its prompts with) is counted in the same
  counter, by the same tracker and callbacks; its class carries :class:`PromptRole`, which marks the thread for
  the length of each of its calls, so its share (calls, tokens) is kept apart and priced at its own price.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass, field

from harness.record import LMFailures, LMUsage
from harness.redact import redact_url, scrub

MAX_ERRORS = 1000  # failure descriptions kept per run, so that each phase can name its first one


@dataclass
class _Totals:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    engine_s: float = 0.0
    without_usage: int = 0  # served calls whose response had no token usage
    failed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    http_statuses: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    fallbacks: int = 0  # served answers ChatAdapter could not parse, asked again through JSONAdapter
    errors: list[str] = field(default_factory=list)  # one line per failure, in order (the first MAX_ERRORS)
    # Of the served calls above, those the run's prompt LM answered (--prompt-lm; PromptRole)
    prompt_calls: int = 0
    prompt_input_tokens: int = 0
    prompt_output_tokens: int = 0

    def copy(self) -> "_Totals":
        return _Totals(**{**vars(self), "by_kind": dict(self.by_kind), "http_statuses": dict(self.http_statuses),
                          "errors": list(self.errors)})


class UsageCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._t = _Totals()
        self.price = None  # harness.lm.pricing.Price, set by whoever builds the LM
        self.prompt_price = None  # the prompt LM's (--prompt-lm), for the calls it answered; None: `price`
        self.retries_counted = False  # True once the retry hook is installed (else retries are not measured)

    def add(self, calls: int = 0, input_tokens: int = 0, output_tokens: int = 0, engine_s: float = 0.0,
            without_usage: int = 0, propagate: bool = True) -> None:
        """Count served calls; `propagate`: also into this thread's `also_counting` counter (False for a counter
        that only splits calls the run's counter has already counted, so nothing is counted twice there)."""
        prompt = propagate and getattr(_ROLE, "prompt", False)
        with self._lock:
            self._t.calls += calls
            self._t.input_tokens += input_tokens
            self._t.output_tokens += output_tokens
            self._t.engine_s += engine_s
            self._t.without_usage += without_usage
            if prompt:
                self._t.prompt_calls += calls
                self._t.prompt_input_tokens += input_tokens
                self._t.prompt_output_tokens += output_tokens
        also = getattr(_ALSO, "counter", None) if propagate else None
        if also is not None and also is not self:
            also.add(calls, input_tokens, output_tokens, engine_s, without_usage, propagate=False)

    def cost(self, t: "_Totals") -> float | None:
        """USD for the tokens of `t` (totals or a difference of two): the prompt LM's share at its price, the
        rest at the run's; None where a price is not known."""
        if self.price is None or (t.prompt_calls and self.prompt_price is None):
            return None
        rest = self.price.cost(t.input_tokens - t.prompt_input_tokens, t.output_tokens - t.prompt_output_tokens)
        return rest + (self.prompt_price.cost(t.prompt_input_tokens, t.prompt_output_tokens) if t.prompt_calls else 0)

    def add_failure(self, kind: str, status: int | None = None, message: str | None = None) -> None:
        with self._lock:
            self._t.failed += 1
            self._t.by_kind[kind] = self._t.by_kind.get(kind, 0) + 1
            if status is not None:
                self._t.http_statuses[str(status)] = self._t.http_statuses.get(str(status), 0) + 1
            if len(self._t.errors) < MAX_ERRORS:
                self._t.errors.append(message or kind)

    def add_retry(self) -> None:
        with self._lock:
            self._t.retries += 1

    def add_fallback(self) -> None:
        with self._lock:
            self._t.fallbacks += 1

    def totals(self) -> _Totals:
        with self._lock:
            return self._t.copy()

    def usage(self) -> LMUsage:
        return since(_Totals(), self)

    def failures(self) -> LMFailures:
        return failures_since(_Totals(), self)

    def reset(self) -> None:
        with self._lock:
            self._t = _Totals()


COUNTER = UsageCounter()

_ALSO = threading.local()  # .counter: a second counter that this thread's served calls are added to as well


_ROLE = threading.local()  # .prompt: this thread is inside a call of the run's prompt LM


class PromptRole:
    """Mixed into the prompt LM's class (:func:`as_prompt_lm`): every call it makes, and whatever DSPy counts
    during it in this thread (usage, completions), is the prompt LM's, so the run's counter keeps that share
    apart (``prompt_calls``, its tokens) and prices it at the prompt LM's price."""

    def __call__(self, *args, **kwargs):
        previous, _ROLE.prompt = getattr(_ROLE, "prompt", False), True
        try:
            return super().__call__(*args, **kwargs)
        finally:
            _ROLE.prompt = previous

    async def acall(self, *args, **kwargs):
        previous, _ROLE.prompt = getattr(_ROLE, "prompt", False), True
        try:
            return await super().acall(*args, **kwargs)
        finally:
            _ROLE.prompt = previous


def as_prompt_lm(lm):
    """`lm` (a dspy.LM) as the run's prompt LM: its calls counted in the run's counter and kept apart there."""
    cls = type(lm)
    if not issubclass(cls, PromptRole):
        lm.__class__ = _prompt_class(cls)
    return lm


@functools.cache
def _prompt_class(cls: type) -> type:
    return type(f"Prompt{cls.__name__}", (PromptRole, cls), {"__module__": __name__})


def prompt_share(before: _Totals | None = None, counter: UsageCounter = COUNTER) -> dict:
    """The prompt LM's calls, tokens and spend since the snapshot `before` (None: since the start), for a
    record's extra.prompt_lm."""
    now, before = counter.totals(), before or _Totals()
    calls = now.prompt_calls - before.prompt_calls
    inp = now.prompt_input_tokens - before.prompt_input_tokens
    out = now.prompt_output_tokens - before.prompt_output_tokens
    cost = counter.prompt_price.cost(inp, out) if counter.prompt_price is not None else None
    return {"lm_calls": calls, "input_tokens": inp, "output_tokens": out,
            "api_cost_usd": None if cost is None else round(cost, 8)}


@contextlib.contextmanager
def also_counting(counter: UsageCounter):
    """While the block runs, every call served in *this thread* is counted in `counter` too (the run's counter
    still counts it). Used to tell apart the calls one part of an optimizer makes (GEPA's reflection LM, called
    by its instruction proposer in GEPA's own thread) without a second DSPy callback on every call."""
    previous = getattr(_ALSO, "counter", None)
    _ALSO.counter = counter
    try:
        yield counter
    finally:
        _ALSO.counter = previous


def since(before: _Totals, counter: UsageCounter = COUNTER) -> LMUsage:
    """Usage served since the snapshot `before` (``counter.totals()``). Tokens and spend are None if any
    call served in between carried no usage: a partial sum is not a figure."""
    now = counter.totals()
    missing = now.without_usage - before.without_usage
    inp, out = now.input_tokens - before.input_tokens, now.output_tokens - before.output_tokens
    delta = _Totals(input_tokens=inp, output_tokens=out, prompt_calls=now.prompt_calls - before.prompt_calls,
                    prompt_input_tokens=now.prompt_input_tokens - before.prompt_input_tokens,
                    prompt_output_tokens=now.prompt_output_tokens - before.prompt_output_tokens)
    cost = counter.cost(delta) if not missing else None
    return LMUsage(lm_calls=now.calls - before.calls, input_tokens=None if missing else inp,
                   output_tokens=None if missing else out, api_cost_usd=None if cost is None else round(cost, 8),
                   calls_without_usage=missing)


def failures_since(before: _Totals, counter: UsageCounter = COUNTER) -> LMFailures:
    """LM calls that failed since the snapshot `before` (errored examples are added by the caller)."""
    now = counter.totals()

    def delta(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        return {k: v - b.get(k, 0) for k, v in sorted(a.items()) if v - b.get(k, 0)}

    failed = now.failed - before.failed
    return LMFailures(failed_calls=failed, by_kind=delta(now.by_kind, before.by_kind),
                      http_statuses=delta(now.http_statuses, before.http_statuses),
                      retries=now.retries - before.retries if counter.retries_counted else None,
                      first_error=now.errors[before.failed] if failed and before.failed < len(now.errors) else None,
                      adapter_fallbacks=now.fallbacks - before.fallbacks)


def _usage_tokens(entry: dict) -> tuple[int | None, int | None]:
    """(input, output) tokens from a usage dict in litellm/OpenAI or lm15 naming; None where absent."""
    inp = entry.get("prompt_tokens", entry.get("input_tokens"))
    out = entry.get("completion_tokens", entry.get("output_tokens"))
    return (None if inp is None else int(inp)), (None if out is None else int(out))


def failure_kind(exc: BaseException) -> tuple[str, int | None]:
    """(kind, HTTP status or None) of a failed LM call, from DSPy 3.4's canonical errors
    (dspy.utils.exceptions): every engine failure reaches the callback as one of them."""
    from dspy.utils.exceptions import AdapterParseError, LMTimeoutError, LMTransportError

    if isinstance(exc, AdapterParseError):
        return "parse", None
    if isinstance(exc, (LMTimeoutError, TimeoutError)):
        return "timeout", None
    if isinstance(exc, (LMTransportError, ConnectionError)):
        return "connection", None
    status = getattr(exc, "status", None)
    if status is None:
        status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return "http_status", status
    return "other", None


def describe_failure(exc: BaseException, kind: str, status: int | None, where: str | None) -> str:
    """One line for a failed call: what failed, where (the URL with its credentials redacted), DSPy's words."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    head = {"connection": "connection failed", "timeout": "timed out", "parse": "answer could not be parsed",
            "http_status": f"HTTP {status}", "other": type(exc).__name__}[kind]
    place = f" to {redact_url(where)}" if where and kind != "parse" else ""
    line = scrub(f"{head}{place}: {text}")
    return line if len(line) <= 300 else line[:297] + "..."


_LAST = threading.local()  # .counted: whether the LM this thread called last is the run's LM


def uncounted(lm) -> bool:
    """Whether `lm` is not the run's LM but a model the harness trains in the run's process (a weight
    strategy's student: its engine or provider says ``harness_uncounted = True``). Its calls are not LM
    calls of the run (no API serves them) and its unparsable answers are the student's score, not LM failures."""
    return any(getattr(getattr(lm, part, None), "harness_uncounted", False) for part in ("provider", "engine"))


@functools.cache
def failure_counting_callback() -> type:
    """The DSPy callback class that counts failed LM calls and unparsable answers into its `counter`.

    Each LM's own callback derives from it (the offline LM's rollout tag, the real LM's completion counter),
    so that counting failures adds no callback to DSPy's dispatch: one more (even a no-op) made each call of
    the math program on the offline LM 0.25-0.3 ms slower on the 2-core VM (0.74 ms with none), a cost the
    offline figures must not carry."""
    from dspy.adapters import ChatAdapter, JSONAdapter
    from dspy.utils.callback import BaseCallback

    class FailureCounting(BaseCallback):
        counter: UsageCounter = COUNTER
        where: str | None = None  # the API base, to name the server in the first failure's description

        def on_lm_start(self, call_id, instance, inputs):
            # An adapter parses the answer in the thread that called the LM, right after the call: which LM
            # answered decides whether a parse failure is the run's LM failing (counted) or a trained
            # student's answer (not counted, as its calls are not: see `uncounted`).
            _LAST.counted = not uncounted(instance)
            calls = self.open_calls()  # (DSPy 2.6.16 calls back from LM.forward inside __call__)
            calls.depth = getattr(calls, "depth", 0) + 1

        def open_calls(self) -> threading.local:
            """This callback's open LM callbacks in the calling thread (``.depth``)."""
            return self.__dict__.get("_open") or self.__dict__.setdefault("_open", threading.local())

        def outermost(self) -> bool:
            """Whether the on_lm_end now being handled closes this thread's outermost LM callback."""
            return getattr(self.open_calls(), "depth", 1) <= 1

        def outermost_end(self) -> bool:
            """Close one LM callback; True where it was the outermost of the thread: one DSPy call, counted once,
            where a release nests two (2.6.16 decorates both BaseLM.__call__ and LM.forward with callbacks)."""
            outer, calls = self.outermost(), self.open_calls()
            calls.depth = max(0, getattr(calls, "depth", 1) - 1)
            return outer

        def on_lm_end(self, call_id, outputs, exception=None):
            if not self.outermost_end():
                return
            if isinstance(exception, Exception) and getattr(_LAST, "counted", True):  # no KeyboardInterrupt
                kind, status = failure_kind(exception)
                self.counter.add_failure(kind, status, describe_failure(exception, kind, status, self.where))

        def on_adapter_parse_start(self, call_id, instance, inputs):
            # ChatAdapter (not its JSONAdapter subclass) catches its own parse error and asks the LM again through
            # JSONAdapter (dspy/adapters/chat_adapter.py, __call__): that failure is a fallback, not a failed call.
            _LAST.falls_back = (isinstance(instance, ChatAdapter) and not isinstance(instance, JSONAdapter)
                                and getattr(instance, "use_json_adapter_fallback", True))

        def on_adapter_parse_end(self, call_id, outputs, exception=None):
            if isinstance(exception, Exception) and getattr(_LAST, "counted", True):
                if getattr(_LAST, "falls_back", False):
                    self.counter.add_fallback()
                else:
                    self.counter.add_failure("parse", None, describe_failure(exception, "parse", None, None))

    return FailureCounting


def install_failure_counting(counter: UsageCounter = COUNTER, where: str | None = None) -> None:
    """Count failed LM calls, unparsable answers and retries into `counter`, in every thread (any LM): through
    the LM's own callback where it derives from :func:`failure_counting_callback`, else through a new one."""
    import dspy

    base = failure_counting_callback()
    mine = [c for c in dspy.settings.callbacks if isinstance(c, base)]
    if not mine:
        mine = [base()]
        dspy.configure(callbacks=[*dspy.settings.callbacks, *mine])
    for callback in mine:
        callback.counter, callback.where = counter, where
    counter.retries_counted = _count_retries(counter)


def _count_retries(counter: UsageCounter) -> bool:
    """Wrap DSPy's retry wait so that each retry is counted; False where this DSPy has none to wrap."""
    try:
        from dspy.clients import execution
    except ImportError:
        return False
    delay = getattr(execution, "_delay", None)
    if not callable(delay):
        return False
    original = getattr(delay, "__wrapped_delay__", delay)

    def counted_delay(exc, attempt):
        counter.add_retry()
        return original(exc, attempt)

    counted_delay.__wrapped_delay__ = original
    execution._delay = counted_delay
    return True


def install_real_lm_counting(counter: UsageCounter = COUNTER) -> None:
    """Count a real LM's calls and tokens across every thread (see the module docstring)."""
    import dspy
    from dspy.utils.usage_tracker import UsageTracker

    class ServedUsageTracker(UsageTracker):
        def add_usage(self, lm: str, usage_entry: dict) -> None:
            if not getattr(_LAST, "counted", True):  # a trained student's call, in this thread: not the run's LM
                return
            inp, out = _usage_tokens(dict(usage_entry or {}))
            if inp is None and out is None:
                counter.add(without_usage=1)  # the server said nothing about tokens: not measured
            else:
                counter.add(input_tokens=inp or 0, output_tokens=out or 0)

        def __deepcopy__(self, memo):  # one tracker for all threads
            return self

    class CompletionCounter(failure_counting_callback()):
        def on_lm_end(self, call_id, outputs, exception=None):
            outermost = self.outermost()  # (read before the base class closes this callback)
            super().on_lm_end(call_id, outputs, exception)
            if outermost and exception is None and outputs is not None and getattr(_LAST, "counted", True):
                counter.add(calls=len(outputs) if isinstance(outputs, list) else 1)

    callbacks = [c for c in dspy.settings.callbacks if not isinstance(c, failure_counting_callback())]
    dspy.configure(usage_tracker=ServedUsageTracker(), callbacks=[*callbacks, CompletionCounter()])


def describe_failures(lm_calls: int | None, failures: LMFailures | None) -> str | None:
    """One line, e.g. "12 of 60 LM calls failed (http 500 x12; 24 retries), 4 examples errored"; None when no
    call failed and no example errored. Calls attempted = served (`lm_calls`) + failed calls never served."""
    if failures is None or (not failures.failed_calls and not failures.errored and not failures.adapter_fallbacks):
        return None
    parts = []
    if failures.failed_calls:
        kinds = [f"http {code} x{n}" for code, n in sorted(failures.http_statuses.items())]
        kinds += [f"{kind} x{n}" for kind, n in failures.by_kind.items() if kind != "http_status"]
        retries = f"; {failures.retries:,} retries" if failures.retries else ""
        attempted = (lm_calls or 0) + failures.unserved_calls
        parts.append(f"{failures.failed_calls:,} of {attempted:,} LM calls failed ({', '.join(kinds)}{retries})")
    if failures.adapter_fallbacks:
        parts.append(f"{failures.adapter_fallbacks:,} of {lm_calls or 0:,} answers not in ChatAdapter's format "
                     "(asked again through JSONAdapter)")
    if failures.errored:
        n = failures.errored
        parts.append(f"{n:,} example{'s' if n != 1 else ''} errored")
    return ", ".join(parts)


def every_call_failed(lm_calls: int | None, failures: LMFailures | None) -> str | None:
    """The one-line reason when LM calls were attempted and none gave a usable answer (none was served, or
    every served answer failed to parse), else None."""
    if failures is None or not failures.failed_calls:
        return None
    attempted = (lm_calls or 0) + failures.unserved_calls
    if failures.failed_calls + failures.adapter_fallbacks < attempted:  # a fallback's answer was not usable either
        return None
    return (f"every LM call failed ({failures.failed_calls + failures.adapter_fallbacks:,} of {attempted:,}: "
            f"{failures.first_error or 'no reason recorded'})")
