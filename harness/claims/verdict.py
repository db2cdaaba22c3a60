"""A verdict on one claim, and how a claimed range is judged.

A verdict is ``holds``, ``contradicted`` or ``untestable here``. The first two must carry a figure and
say what kind of figure it is (``basis``): measured (read from run records), projected (measured figures
carried through a stated model or price, or an analytic model), or both. ``untestable here`` carries the
reason instead. Building a verdict that breaks this raises, so no check can slip one through.

A verdict from a report of the quick profile is ``provisional`` (with the reason): the quick profile
shrinks the optimizers' budgets and the train set, and some verdicts change with them
(``harness.claims.profiles``); the reference verdicts come from the standard profile.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

HOLDS, CONTRADICTED, UNTESTABLE = "holds", "contradicted", "untestable here"
VERDICTS = (HOLDS, CONTRADICTED, UNTESTABLE)
BASES = ("measured", "projected", "measured + projected")
Bound = Literal["upper", "lower", "both"]


@dataclass
class Verdict:
    claim_id: str
    section: str
    claim: str  # the claim in our words
    study: str  # what the study says, with its figure
    verdict: str
    figure: str | None = None  # the figure behind the verdict, with units
    basis: str | None = None  # measured / projected / measured + projected
    rule: str = ""  # the rule that turned the figure into the verdict
    method: str = ""  # how the figure was obtained
    reason: str | None = None  # why untestable
    run_ids: list[str] = field(default_factory=list)  # every run the figure rests on
    key_runs: list[str] = field(default_factory=list)  # the runs that decide it (worst case, ...)
    data: dict[str, Any] = field(default_factory=dict)  # the numbers, for JSON readers
    provisional: bool = False  # from a report whose profile shrinks the budgets (quick): not a reference verdict
    provisional_reason: str | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"{self.claim_id}: verdict {self.verdict!r} is not one of {VERDICTS}")
        if self.verdict == UNTESTABLE:
            if not self.reason:
                raise ValueError(f"{self.claim_id}: 'untestable here' needs a reason")
        else:
            if not self.figure:
                raise ValueError(f"{self.claim_id}: {self.verdict!r} needs a figure behind it")
            if self.basis not in BASES:
                raise ValueError(f"{self.claim_id}: basis {self.basis!r} is not one of {BASES}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def untestable(claim, reason: str, **kw: Any) -> Verdict:
    return Verdict(claim_id=claim.id, section=claim.section, claim=claim.text, study=claim.study,
                   verdict=UNTESTABLE, reason=reason, **kw)


def decided(claim, ok: bool, figure: str, basis: str, rule: str, method: str, **kw: Any) -> Verdict:
    return Verdict(claim_id=claim.id, section=claim.section, claim=claim.text, study=claim.study,
                   verdict=HOLDS if ok else CONTRADICTED, figure=figure, basis=basis, rule=rule, method=method, **kw)


@dataclass(frozen=True)
class RangeJudgement:
    ok: bool
    position: str  # "inside", "below", "above", "spans" (some below and some above)
    note: str  # what the unchecked side says, or where the figures fall


RANGE_RULES = {
    "upper": "the claim is an upper bound ('adequate', 'low'): holds if the largest figure is at or below the "
             "upper end; below the lower end only makes the lower end pessimistic",
    "lower": "the claim is a lower bound ('required', 'high'): holds if the smallest figure is at or above the "
             "lower end; a case that needs less contradicts it; above the upper end is reported",
    "both": "every figure must lie inside the range",
}


def fmt_ratio(x: float) -> str:
    if x >= 1000:
        return "more than x1,000"
    return f"x{x:,.0f}" if x >= 10 else f"x{x:,.1f}"


def judge_range(lo_value: float, hi_value: float, low: float, high: float, bound: Bound) -> RangeJudgement:
    """Judge the smallest and largest figure of the cases against a claimed [low, high]."""
    if bound not in RANGE_RULES:
        raise ValueError(f"bound must be upper, lower or both, not {bound!r}")
    below, above = lo_value < low, hi_value > high
    if not below and not above:
        position = "inside"
    elif below and above:
        position = "spans"
    else:
        position = "below" if below else "above"
    if bound == "upper":
        ok = not above
    elif bound == "lower":
        ok = not below
    else:
        ok = position == "inside"
    notes = []
    if below:
        gap = f" ({fmt_ratio(low / lo_value)} below)" if lo_value > 0 else ""
        notes.append(f"smallest figure under the lower end {low:g}{gap}"
                     + ("; the lower end is pessimistic" if bound == "upper" else ""))
    if above:
        gap = f" ({fmt_ratio(hi_value / high)} above)" if high > 0 else ""
        notes.append(f"largest figure over the upper end {high:g}{gap}"
                     + ("; reported, not counted against a lower-bound claim" if bound == "lower" else ""))
    if not notes:
        notes.append("every figure inside the range")
    return RangeJudgement(ok=ok, position=position, note="; ".join(notes))
