"""The verdicts as a Markdown table (what `python -m harness claims` prints and report.md opens with) or JSON."""

from __future__ import annotations

import json

from harness.claims.results import ClaimsResult

MARK = {"holds": "holds", "contradicted": "**contradicted**", "untestable here": "_untestable here_"}


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _runs(v) -> str:
    if not v.run_ids:
        return ""
    if not v.key_runs and len(v.run_ids) > 3:
        return f"{len(v.run_ids)} runs"
    keys = v.key_runs or v.run_ids
    shown = ", ".join(f"`{k}`" for k in keys[:3])
    more = len(v.run_ids) - len(keys[:3])
    return shown + (f" +{more} more" if more > 0 else "")


def verdict_table(result: ClaimsResult, says: str = "the study says") -> str:
    """The table alone: one row per verdict (marked provisional where the report's profile makes it so)."""
    lines = [f"| claim | {says} | verdict | figure behind it | basis | runs |", "|---|---|---|---|---|---|"]
    for v in result.verdicts:
        figure = v.figure if v.verdict != "untestable here" else f"reason: {v.reason}"
        mark = MARK[v.verdict] + (" (provisional)" if v.provisional else "")
        lines.append(f"| {_cell(v.claim)} `{v.claim_id}` | {_cell(v.study)} | {mark} | {_cell(figure)} | "
                     f"{v.basis or ''} | {_runs(v)} |")
    return "\n".join(lines)


def provisional_block(result: ClaimsResult) -> list[str]:
    """A warning above the verdicts of a report whose verdicts are provisional."""
    if not result.provisional:
        return []
    return [f"**Every verdict below is provisional**: {result.provisional_reason}.", ""]


def differences_block(result: ClaimsResult, heading: str = "### Verdicts that depend on the profile") -> list[str]:
    """The verdicts a quick report judges differently from this standard one, each with why."""
    d = result.profile_differences
    if not d:
        return []
    lines = [heading, "", f"{d['differ']} of {d['verdicts']} verdicts differ between this standard report and the "
             f"{d['quick_profile']} report {d['quick_report']} (judged with the same claims file):", ""]
    if not d["rows"]:
        return lines + ["None.", ""]
    lines += ["| claim | standard | quick | why they differ |", "|---|---|---|---|"]
    for r in d["rows"]:
        lines.append(f"| {_cell(r['claim'])} `{r['claim_id']}` | {MARK.get(r['standard'], r['standard'])} | "
                     f"{MARK.get(r['quick'], r['quick']) if r['quick'] else '-'} | {_cell(r['reason'])} |")
    return lines + [""]


def summary_line(result: ClaimsResult) -> str:
    c = result.counts()
    r = result.report
    provisional = " (provisional)" if result.provisional else ""
    return (f"{len(result.verdicts)} verdicts{provisional} on {result.study.get('id', 'the study')} from a {r['profile']} report "
            f"({r['ok_runs']} of {r['runs']} runs ok, LM {r['lm']}): {c['holds']} hold, {c['contradicted']} "
            f"contradicted, {c['untestable here']} untestable here")


def beyond_block(result: ClaimsResult, heading: str = "## Claims beyond the study") -> list[str]:
    """The claims of beyond.toml (GEPA against GRPO and MIPROv2, DSPy's own projections): their own table and
    counts, never part of the study's."""
    b = result.beyond
    if b is None:
        error = result.beyond_error
        return [heading, "", f"The claims beyond the study could not be judged: {error}", ""] if error else []
    c = b.counts()
    provisional = " (provisional)" if b.provisional else ""
    lines = [heading, "", f"Published claims about GEPA and DSPy's own projections, judged by the same engine from the "
             f"same runs ({b.study.get('source', '')}); not claims of {result.study.get('id', 'the study')}, and not "
             f"counted in its verdicts.", "",
             f"{len(b.verdicts)} verdicts{provisional}: {c['holds']} hold, {c['contradicted']} contradicted, "
             f"{c['untestable here']} untestable here.", "", verdict_table(b, "the source says"), "", "How to read them:", ""]
    return lines + rules_block(b) + ["", "Each verdict's rule, method and numbers: claims.json (`beyond`).", ""]


def rules_block(result: ClaimsResult) -> list[str]:
    return [f"- **{k.replace('_', ' ')}**: {' '.join(v.split())}" for k, v in result.rules.items()]


def to_markdown(result: ClaimsResult, heading: str = "## Claims: verdicts") -> str:
    lines = [heading, "", *provisional_block(result), summary_line(result) + ".", "", verdict_table(result), "",
             *differences_block(result, "## Verdicts that depend on the profile"), "How to read the verdicts:", ""]
    lines += rules_block(result)
    lines += ["", "Rules and methods per verdict are in claims.json (`rule`, `method`, `data`).", ""]
    lines += beyond_block(result, heading.replace("Claims: verdicts", "Claims beyond the study"))
    return "\n".join(lines) + "\n"


def to_json(result: ClaimsResult) -> str:
    return json.dumps(result.as_dict(), indent=1, default=str) + "\n"
