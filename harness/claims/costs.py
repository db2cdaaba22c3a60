"""What an optimizer costs, read from a run record: its compile step plus the inference it adds.

A run scores the program before and after compiling on the same test split. The compile phase is the
optimizer's own work. Some optimizers move their cost to inference (KNNFewShot bootstraps per question,
Ensemble calls every member): the compiled program's evaluation then costs more than the unoptimized
one's, and that excess is counted too. The evaluation both runs share adds the same amount to every
strategy on a task, so leaving it out changes no ranking, and it keeps the harness's own scoring out
of the optimizer's bill.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from harness.record import RunRecord

METHOD = ("optimization cost = the compile phase's LM calls, tokens, spend and wall time (optimize_wall_s; a "
          "record's wall_s is its whole run), plus the excess of "
          "the evaluation after compiling over the evaluation before it on the same test split (each figure "
          "clipped at 0): the inference cost an optimizer adds (KNNFewShot, Ensemble). Calls and tokens are "
          "counted where the LM served them; spend is those tokens at the record's `priced_as` price. "
          "Peak RAM is the run's whole-process peak (VmHWM), the only peak a record has.")

# name -> (label, unit) of the cost figures every analysis uses, in this order.
COST_METRICS: dict[str, tuple[str, str]] = {
    "lm_calls": ("LM calls", "calls"),
    "tokens": ("tokens (input + output)", "tokens"),
    "spend_usd": ("spend at the reference price (projected)", "USD"),
    "optimize_wall_s": ("optimization wall time", "s"),
    "peak_rss_mb": ("peak RAM", "MiB"),
}


@dataclass(frozen=True)
class OptimizationCost:
    lm_calls: int
    input_tokens: int | None  # None: the LM reported no usage for some call (not measured, never 0)
    output_tokens: int | None
    spend_usd: float | None
    optimize_wall_s: float  # the optimization's own time (compile + the inference it adds); RunRecord.wall_s is the whole run
    peak_rss_mb: float

    @property
    def tokens(self) -> int | None:
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict:
        return {**asdict(self), "tokens": self.tokens}


def _excess(after: float | None, before: float | None) -> float:
    if after is None or before is None:
        return 0.0
    return max(0.0, float(after) - float(before))


def optimization_cost(rec: RunRecord) -> OptimizationCost | None:
    """The cost defined in METHOD, or None when the run has no compile phase (it failed before)."""
    comp = rec.phase("compile")
    if comp is None:
        return None
    before, after = rec.phase("eval_before"), rec.phase("eval_after")

    def plus_excess(get) -> float:
        base = get(comp) or 0
        if before is None or after is None:
            return float(base)
        return float(base) + _excess(get(after), get(before))

    def measured(get) -> float | None:
        """plus_excess, or None when a phase it needs did not measure the figure (no usage reported)."""
        phases = [comp] if before is None or after is None else [comp, before, after]
        return None if any(get(p) is None for p in phases) else plus_excess(get)

    tokens_in, tokens_out = measured(lambda p: p.usage.input_tokens), measured(lambda p: p.usage.output_tokens)
    spend = measured(lambda p: p.usage.api_cost_usd)
    return OptimizationCost(
        lm_calls=int(plus_excess(lambda p: p.usage.lm_calls)),
        input_tokens=None if tokens_in is None else int(tokens_in),
        output_tokens=None if tokens_out is None else int(tokens_out),
        spend_usd=spend,
        optimize_wall_s=round(plus_excess(lambda p: p.wall_s), 4),
        peak_rss_mb=rec.peak_rss_mb,
    )
