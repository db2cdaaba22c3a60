"""A budget that holds: `--max-calls N` and `--max-spend USD` stop a run at its cap.

In the run's process every call of a counted LM (the run's LM, not a trained student) is admitted first:
the call that would be call N+1, or the first one once the spend counted so far (its served tokens at the
run's price) has reached the cap, raises :class:`BudgetReached` instead of reaching the LM. It is a
BaseException, so that no optimizer, evaluator or retry loop takes it for a failed call and goes on: the run
ends there, its record keeps what was spent, with status ``budget``. A spend cap can be passed by the cost
of the calls in flight when it is reached (at most one per thread).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

from harness.lm.usage import COUNTER, UsageCounter, uncounted


class BudgetReached(BaseException):
    """The run reached its --max-calls or --max-spend: it stops, and the record says so (status budget)."""


@dataclass
class Budget:
    max_calls: int | None = None
    max_spend: float | None = None
    counter: UsageCounter = COUNTER

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.admitted = 0

    def spent(self) -> float | None:
        return self.counter.cost(self.counter.totals())

    def admit(self) -> None:
        with self._lock:
            if self.max_calls is not None and self.admitted >= self.max_calls:
                raise BudgetReached(f"--max-calls {self.max_calls} reached: {self.admitted} LM calls made")
            if self.max_spend is not None:
                if self.counter.totals().without_usage:  # a spend cap that cannot be counted does not hold: stop
                    raise BudgetReached(f"--max-spend ${self.max_spend:g} cannot be held: the server answered "
                                        "without token usage, so the spend is not known")
                spent = self.spent()
                if spent is not None and spent >= self.max_spend:
                    raise BudgetReached(f"--max-spend ${self.max_spend:g} reached: ${spent:.4f} spent in "
                                        f"{self.admitted} LM calls")
            self.admitted += 1


def install(budget: Budget) -> None:
    """Every counted LM call in this process passes `budget.admit()` first (dspy.BaseLM.__call__ and acall)."""
    import dspy

    for name in ("__call__", "acall"):
        original = getattr(dspy.BaseLM, name)
        if getattr(original, "_harness_budget", False):
            continue

        if name == "acall":
            @functools.wraps(original)
            async def wrapped(self, *args, _original=original, **kwargs):
                if not uncounted(self):
                    budget.admit()
                return await _original(self, *args, **kwargs)
        else:
            @functools.wraps(original)
            def wrapped(self, *args, _original=original, **kwargs):
                if not uncounted(self):
                    budget.admit()
                return _original(self, *args, **kwargs)

        wrapped._harness_budget = True
        setattr(dspy.BaseLM, name, wrapped)


def from_options(options: dict) -> Budget | None:
    calls, spend = options.get("max_calls"), options.get("max_spend")
    if calls is None and spend is None:
        return None
    return Budget(max_calls=None if calls is None else int(calls), max_spend=None if spend is None else float(spend))
