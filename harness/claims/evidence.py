"""Everything the checks read, gathered once: the report's runs as a table, the claims file, and the
measurements that live beside ``report.json`` (``finetune_memory.json``, ``scaling.json``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.claims import memory_data
from harness.claims.costs import COST_METRICS, optimization_cost
from harness.claims.spec import ClaimsFile
from harness.record import Report, RunRecord

MIB_TO_GB = 1024 * 1024 / 1e9
RUN_COLUMNS = ["run_id", "strategy", "label", "task", "repeat", "status", "error", "tier", "tier_rank", "changes", "lm_kind", "toy_student",
               "priced_as", "run_wall_s", "disk_written_mb", "gpu_peak_mb", "torch_peak_allocated_mb", "score_before",
               "score_after", "n_train", "n_dev", "trained", "training_steps", "training_device", "trained_params",
               "checkpoint_bytes", "param_change_rel", "input_tokens", "output_tokens", *COST_METRICS]
NUMERIC = ["tier_rank", "run_wall_s", "disk_written_mb", "gpu_peak_mb", "torch_peak_allocated_mb", "score_before",
           "score_after", "n_train", "n_dev", "training_steps", "trained_params", "checkpoint_bytes", "param_change_rel",
           "input_tokens", "output_tokens", *COST_METRICS]

TOY_METRICS = ("optimize_wall_s", "peak_rss_mb")  # what a toy student's run measures of the toy, not of a real model


def run_row(rec: RunRecord, claims: ClaimsFile) -> dict[str, Any]:
    s = claims.strategy(rec.strategy)
    cost = optimization_cost(rec) if rec.status == "ok" else None
    row: dict[str, Any] = {
        "run_id": rec.run_id, "strategy": rec.strategy, "label": rec.key[0], "task": rec.task, "repeat": rec.repeat, "status": rec.status,
        "error": rec.error, "tier": s.tier if s else None, "tier_rank": claims.tier_rank(s.tier) if s else None,
        "changes": s.changes if s else None, "lm_kind": rec.lm_kind, "priced_as": rec.priced_as,
        "run_wall_s": rec.wall_s, "disk_written_mb": rec.disk_written_mb, "gpu_peak_mb": rec.gpu_peak_mb,
        "torch_peak_allocated_mb": rec.gpu.torch_peak_allocated_mb, "score_before": rec.score_before,
        "score_after": rec.score_after, "n_train": rec.n_train, "n_dev": rec.n_dev,
        "trained": rec.training is not None, "training_steps": rec.training.steps if rec.training else 0,
        "training_device": rec.training.device if rec.training else None,
        "trained_params": rec.training.total_params if rec.training else None,
        "checkpoint_bytes": rec.training.checkpoint_bytes if rec.training else None,
        "param_change_rel": rec.training.param_change_rel if rec.training else None,
        "input_tokens": None, "output_tokens": None,
    }
    for m in COST_METRICS:
        row[m] = None
    if cost is not None:
        row.update({k: v for k, v in cost.as_dict().items() if k in row})
    else:
        row["peak_rss_mb"] = rec.peak_rss_mb
    row["toy_student"] = rec.toy_student
    if rec.toy_student:  # a random toy's training time and memory say nothing of a real model's: kept out of verdicts
        row.update({m: None for m in TOY_METRICS})
    return row


@dataclass
class Evidence:
    report: Report
    claims: ClaimsFile
    runs: pd.DataFrame  # one row per record (every status) the study's claims judge: --set variants left out
    memory: memory_data.MemoryBench | None
    scaling: Any  # harness.claims.projections.Scaling | None
    out: Path | None
    every_run: pd.DataFrame | None = None  # runs and the --set variants' rows ("label": the run's key, e.g.
    # "MIPROv2@auto=heavy"): what the plots draw, so that what a budget costs is seen beside the default's

    # ------------------------------------------------------------------ selections

    def ok(self, scope: str | None = None) -> pd.DataFrame:
        """ok runs; scope "prompt": strategies the study says change prompts only; "weights": the others."""
        df = self.runs[self.runs["status"] == "ok"]
        if scope == "prompt":
            df = df[df["changes"] == "prompt"]
        elif scope == "weights":
            df = df[df["changes"].isin(["weights", "both"])]
        return df

    def ok_labelled(self) -> pd.DataFrame:
        """ok runs, the --set variants' among them, each with its "label" (the plots draw one point per label)."""
        df = self.runs if self.every_run is None else self.every_run
        return df[df["status"] == "ok"]

    def pairs(self, scope: str | None = None, labelled: bool = False) -> pd.DataFrame:
        """Repeats folded: one row per (strategy, task) with the median of each cost metric and the run ids;
        `labelled`: the --set variants too, each its own "strategy" (its label, e.g. "MIPROv2@auto=heavy")."""
        df = self.ok_labelled().assign(strategy=lambda d: d["label"]) if labelled else self.ok(scope)
        if df.empty:
            return df
        metrics = [*COST_METRICS, "input_tokens", "output_tokens", "disk_written_mb", "run_wall_s"]
        agg = df.groupby(["strategy", "task"], sort=False)[metrics].median().reset_index()
        meta = df.groupby(["strategy", "task"], sort=False).agg(
            tier=("tier", "first"), tier_rank=("tier_rank", "first"), changes=("changes", "first"),
            toy_student=("toy_student", "max"), run_ids=("run_id", list), repeats=("run_id", "size")).reset_index()
        return agg.merge(meta, on=["strategy", "task"])

    @property
    def machine_has_gpu(self) -> bool:
        return bool(self.report.machine.gpus)

    @property
    def offline(self) -> bool:
        return self.report.lm.startswith("offline") or all(r.lm_kind == "offline" for r in self.report.runs)


def gather(report: Report, claims: ClaimsFile, out: str | Path | None = None) -> Evidence:
    from harness.claims import projections

    out_path = Path(out) if out is not None else None
    # The columns stated, so that an empty report has them too
    every = pd.DataFrame([run_row(r, claims) for r in report.runs], columns=RUN_COLUMNS)
    for col in NUMERIC:  # None -> NaN, so medians and comparisons work whatever a run lacked
        every[col] = pd.to_numeric(every[col], errors="coerce").astype(float)
    every["trained"] = every["trained"].astype(bool)
    # A run with --set settings is a variant: the study's claims are about each strategy as the profile runs it
    own = pd.Series([not r.settings for r in report.runs], index=every.index, dtype=bool)  # (a bool mask, even empty)
    runs = every[own].reset_index(drop=True)
    return Evidence(report=report, claims=claims, runs=runs, memory=memory_data.load(out_path),
                    scaling=projections.load_scaling(out_path), out=out_path, every_run=every)
