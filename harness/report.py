"""Turning a Report into files a reader uses: runs.csv and report.md (plots and claims: issue 5)."""

from __future__ import annotations

from pathlib import Path

from harness.files import atomic_write_text
from harness.record import Report, RunRecord

COLUMNS = ("run_id", "strategy", "task", "profile", "repeat", "status", "wall_s", "cpu_s", "peak_rss_mb",
           "setup_rss_mb", "gpu_peak_mb", "disk_written_mb", "lm_calls", "input_tokens", "output_tokens",
           "api_cost_usd", "priced_as", "score_before", "score_after", "lm_engine_s", "workaround", "error")


def row(rec: RunRecord) -> dict:
    out = {k: getattr(rec, k) for k in COLUMNS}
    for phase in rec.phases:
        out[f"{phase.name}_wall_s"] = phase.wall_s
        out[f"{phase.name}_lm_calls"] = phase.usage.lm_calls
    return out


def runs_frame(report: Report):
    import pandas as pd

    return pd.DataFrame([row(r) for r in report.runs], columns=None)


def write_outputs(report: Report, out: Path) -> None:
    out = Path(out)
    atomic_write_text(out / "runs.csv", runs_frame(report).to_csv(index=False))
    lines = [f"# dspy-resource-bench report ({report.profile})", ""]
    lines += [f"- {n}" for n in report.notes] + [""]
    lines += ["| run | status | wall s | peak RSS MiB | LM calls | tokens | spend USD | score before -> after |",
              "|---|---|---|---|---|---|---|---|"]
    for r in report.runs:
        tokens = (r.input_tokens or 0) + (r.output_tokens or 0)
        lines.append(f"| {r.run_id} | {r.status} | {r.wall_s:.1f} | {r.peak_rss_mb:.0f} | {r.lm_calls} | {tokens} | "
                     f"{r.api_cost_usd} | {r.score_before} -> {r.score_after} |")
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
