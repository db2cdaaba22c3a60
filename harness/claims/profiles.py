"""How much a verdict can be trusted: which profile it comes from, and which verdicts change with it.

The quick profile shrinks the optimizers' budgets (harness/strategies/prompt.py) and the train set (32
examples instead of 200), so its verdicts are *provisional*; the reference verdicts come from the
standard profile (each optimizer's library defaults). ``differences`` lists every verdict that a quick
and a standard report judge differently, with the figures behind each and why they differ; the report
of a standard profile carries that list when a quick report is at hand (the claims file's
``[assumptions.profiles] quick_reference``, or ``harness claims --against-quick``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.claims.checks import fmt
from harness.claims.verdict import UNTESTABLE, Verdict
from harness.machine import ROOT

STANDARD = "standard"


def provisional_reason(profile: str, n_train: list[int], reference: str | None) -> str | None:
    """Why verdicts from a report of `profile` are provisional; None for the standard profile."""
    if profile == STANDARD:
        return None
    sizes = ", ".join(map(str, n_train)) or "?"
    see = f"; the reference verdicts: {reference}" if reference else ""
    return (f"{profile} profile: budgets shrunk (harness/strategies/prompt.py) and n_train {sizes} instead of the "
            f"standard profile's library defaults and 200 examples, so a verdict may change at the standard profile "
            f"(see 'Verdicts that depend on the profile' in a standard report){see}")


def mark(verdicts: list[Verdict], reason: str | None) -> None:
    for v in verdicts:
        v.provisional, v.provisional_reason = reason is not None, reason


def quick_reference(claims, override: str | Path | None = None) -> Path | None:
    """The quick report to compare a standard one with: `override`, else the claims file's
    ``[assumptions.profiles] quick_reference`` (relative to the repository root), if the file exists."""
    if override is not None:
        return Path(override)
    name = claims.assumption("profiles", "quick_reference")
    path = ROOT / name if name else None
    return path if path is not None and path.exists() else None


def _why(std: Verdict, quick: Verdict, has_scaling: tuple[bool, bool]) -> str:
    """Why two verdicts on the same claim differ, from the figures behind them."""
    if std.verdict == UNTESTABLE or quick.verdict == UNTESTABLE:
        which, v = ("standard", std) if std.verdict == UNTESTABLE else ("quick", quick)
        return f"untestable in the {which} report: {v.reason}"
    ds, dq = std.data, quick.data
    if "bound" in ds and "bound" in dq:
        side, case = ("max", "max_case") if ds["bound"] == "upper" else ("min", "min_case")
        unit = ds.get("unit", "")
        why = (f"the deciding ({'largest' if side == 'max' else 'smallest'}) figure is {fmt(ds[side], unit)} "
               f"({ds[case]}) at the standard profile against {fmt(dq[side], unit)} ({dq[case]}) at the quick one")
        if has_scaling[0] != has_scaling[1]:
            why += ("; only the " + ("standard" if has_scaling[0] else "quick") + " report projects to larger train "
                    "sets (scaling.json of its profile beside it)")
        return why + "; the quick profile's smaller budgets and train set cost less"
    if "ranks" in ds and "ranks" in dq:
        def ranks(d: dict[str, Any]) -> str:
            return (", ".join(f"{m} {r:g}" for m, r in d["ranks"].items()) + f" of {d['strategies_ranked']} "
                    f"(band {d['band'][0]:g}-{d['band'][1]:g}, out of tier on {d['out_of_tier']})")
        return (f"cost ranks at the standard profile: {ranks(ds)}; at the quick one: {ranks(dq)}: the quick budgets "
                "shrink some optimizers more than others, which moves it against its tier")
    return f"standard: {std.figure}; quick: {quick.figure}"


def differences(standard, quick) -> list[dict[str, Any]]:
    """Every claim whose verdict differs between a standard and a quick ClaimsResult, with both verdicts, the
    figures behind them and why they differ. Claims judged in only one of them are listed too."""
    q = {v.claim_id: v for v in quick.verdicts}
    has_scaling = (bool(standard.report.get("scaling")), bool(quick.report.get("scaling")))
    out = []
    for v in standard.verdicts:
        w = q.get(v.claim_id)
        if w is None:
            out.append({"claim_id": v.claim_id, "claim": v.claim, "standard": v.verdict, "quick": None,
                        "standard_figure": v.figure or v.reason, "quick_figure": None,
                        "reason": "not judged in the quick report"})
            continue
        if w.verdict != v.verdict:
            out.append({"claim_id": v.claim_id, "claim": v.claim, "standard": v.verdict, "quick": w.verdict,
                        "standard_figure": v.figure or v.reason, "quick_figure": w.figure or w.reason,
                        "reason": _why(v, w, has_scaling)})
    return out
