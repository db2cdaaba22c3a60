"""The study's claims checked against measurements: ``python -m harness claims REPORT``.

Modules, one idea each:

- ``claims.toml``: the claims as data (the study's figures, how each is checked, every assumption).
- ``spec``: reads the claims file. ``verdict``: a verdict and how a claimed range is judged.
- ``costs``: what an optimizer costs, read from a run record. ``evidence``: the report as a table, and the
  files beside it. ``stats``: ranks, Spearman's rho, least squares.
- ``tiers``: tiers as an ordering of measured cost. ``checks``: one function per kind of check.
- ``projections``: measured tokens priced and timed at hosted models, and at larger train sets (fits with
  their quality, never below what was measured). ``formulas``: the optimizers' own call counts (MIPROv2,
  COPRO) beside the fits. ``profiles``: provisional verdicts (quick profile) and the verdicts that change
  between a quick and a standard report.
- ``analytic``: fine-tuning memory from first principles. ``memory_data``: ``finetune_memory.json`` and how
  far the analytic model agrees with it. ``training_cost``: GPUs, time, money and storage of weight training.
- ``beyond.toml`` / ``beyond``: a second claims file beyond the study (GEPA vs GRPO and MIPROv2, MIPROv2's
  ``_estimate_lm_calls`` and GEPA's budget against measurement) and its checks; judged into ``ClaimsResult.beyond``.
- ``results``: every claim judged, with the projection tables. ``render``: Markdown and JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["evaluate", "main_claims"]


def evaluate(report, out=None, claims=None, with_projections: bool = True, against_quick=None):
    from harness.claims.results import evaluate as _evaluate

    return _evaluate(report, out, claims, with_projections, against_quick)


def main_claims(args: argparse.Namespace) -> int:
    """`python -m harness claims REPORT [--claims FILE] [--format md|json] [--against-quick QUICK]`: print every
    verdict (and, for a standard report, the verdicts the quick report judges differently); exit 0."""
    from harness.claims.render import to_json, to_markdown
    from harness.load import load_report

    path = Path(args.report)
    if path.is_dir():
        path = path / "report.json"
    report = load_report(path)
    result = evaluate(report, out=path.parent, claims=getattr(args, "claims", None),
                      against_quick=getattr(args, "against_quick", None))
    fmt = getattr(args, "format", "md") or "md"
    print(to_json(result) if fmt == "json" else to_markdown(result, heading="# Claims: verdicts"), end="")
    return 0
