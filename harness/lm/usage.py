"""Calls and tokens counted where they are served, in one process-wide, thread-safe counter.

* The offline LM counts in its engine: every completion it serves.
* A real LM is counted by :class:`ServedUsageTracker`, installed as DSPy's global usage
  tracker. DSPy's own ``track_usage`` loses calls made in threads because the parallelizer
  deep-copies the tracker per thread (dspy/utils/parallelizer.py:128-130); this tracker's
  ``__deepcopy__`` returns itself, so every thread adds to the same counter. Completions are
  counted from the ``on_lm_end`` callback (one DSPy call with n>1 serves n completions).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from harness.record import LMUsage


@dataclass
class _Totals:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    engine_s: float = 0.0


class UsageCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._t = _Totals()
        self.price = None  # harness.lm.pricing.Price, set by whoever builds the LM

    def add(self, calls: int = 0, input_tokens: int = 0, output_tokens: int = 0, engine_s: float = 0.0) -> None:
        with self._lock:
            self._t.calls += calls
            self._t.input_tokens += input_tokens
            self._t.output_tokens += output_tokens
            self._t.engine_s += engine_s

    def totals(self) -> _Totals:
        with self._lock:
            return _Totals(**vars(self._t))

    def usage(self) -> LMUsage:
        t = self.totals()
        cost = self.price.cost(t.input_tokens, t.output_tokens) if self.price else None
        return LMUsage(lm_calls=t.calls, input_tokens=t.input_tokens, output_tokens=t.output_tokens,
                       api_cost_usd=None if cost is None else round(cost, 8))

    def reset(self) -> None:
        with self._lock:
            self._t = _Totals()


COUNTER = UsageCounter()


def since(before: LMUsage, counter: UsageCounter = COUNTER) -> LMUsage:
    """Usage served since the snapshot `before`."""
    now = counter.usage()
    cost = None if now.api_cost_usd is None else round(now.api_cost_usd - (before.api_cost_usd or 0.0), 8)
    return LMUsage(lm_calls=now.lm_calls - before.lm_calls, input_tokens=now.input_tokens - before.input_tokens,
                   output_tokens=now.output_tokens - before.output_tokens, api_cost_usd=cost)


def _usage_tokens(entry: dict) -> tuple[int, int]:
    """(input, output) tokens from a usage dict in litellm/OpenAI or lm15 naming."""
    inp = entry.get("prompt_tokens", entry.get("input_tokens")) or 0
    out = entry.get("completion_tokens", entry.get("output_tokens")) or 0
    return int(inp), int(out)


def install_real_lm_counting(counter: UsageCounter = COUNTER) -> None:
    """Count a real LM's calls and tokens across every thread (see the module docstring)."""
    import dspy
    from dspy.utils.callback import BaseCallback
    from dspy.utils.usage_tracker import UsageTracker

    class ServedUsageTracker(UsageTracker):
        def add_usage(self, lm: str, usage_entry: dict) -> None:
            inp, out = _usage_tokens(dict(usage_entry or {}))
            counter.add(input_tokens=inp, output_tokens=out)

        def __deepcopy__(self, memo):  # one tracker for all threads
            return self

    class CompletionCounter(BaseCallback):
        def on_lm_end(self, call_id, outputs, exception=None):
            if exception is None and outputs is not None:
                counter.add(calls=len(outputs) if isinstance(outputs, list) else 1)

    dspy.configure(usage_tracker=ServedUsageTracker(), callbacks=[CompletionCounter()])
