"""Tidy tables of a report: one row per run (runs.csv), and one row per strategy and task with repeats folded."""

from __future__ import annotations

import pandas as pd

from harness.aggregate import Stat, aggregate
from harness.claims.costs import optimization_cost
from harness.record import Report, RunRecord

COLUMNS = ("run_id", "strategy", "task", "profile", "repeat", "status", "wall_s", "cpu_s", "peak_rss_mb",
           "setup_rss_mb", "gpu_peak_mb", "disk_written_mb", "lm_calls", "input_tokens", "output_tokens",
           "api_cost_usd", "priced_as", "score_before", "score_after", "n_train", "n_dev", "n_test", "lm_engine_s",
           "workaround", "error")
TRAINING = ("mode", "device", "dtype", "total_params", "trainable_params", "steps", "examples", "tokens", "loss_first",
            "loss_last", "train_s", "param_change_rel", "checkpoint_bytes")
PHASES = ("setup", "eval_before", "compile", "eval_after")


EVAL_PHASES = ("eval_before", "eval_after")


def engine_cost(recs: list[RunRecord]) -> dict | None:
    """The offline LM's own cost against DSPy's per-call overhead, over the evaluation phases of `recs`.

    Evaluation runs the program alone on one thread, so its wall time is DSPy's work plus the LM's:
    DSPy's overhead per call = (wall - engine CPU) / calls. None without offline evaluation calls."""
    calls = wall = engine = 0.0
    for rec in recs:
        for p in (rec.phase(n) for n in EVAL_PHASES):
            if p is not None and p.lm_engine_s is not None and p.usage.lm_calls:
                calls, wall, engine = calls + p.usage.lm_calls, wall + p.wall_s, engine + p.lm_engine_s
    if not calls or wall <= engine:
        return None
    return {"calls": int(calls), "engine_ms_per_call": 1000 * engine / calls,
            "dspy_ms_per_call": 1000 * (wall - engine) / calls, "engine_share_pct": 100 * engine / (wall - engine)}


def row(rec: RunRecord) -> dict:
    """One flat row: the record's scalar fields, its phases, its training figures and its optimization cost."""
    out = {k: getattr(rec, k) for k in COLUMNS}
    out["machine_id"] = rec.machine.machine_id
    f = rec.lm_failures  # None: a record older than schema 3 (not counted)
    out["lm_failed_calls"] = f.failed_calls if f else None
    out["lm_retries"] = f.retries if f else None
    out["lm_errored_examples"] = f.errored if f else None
    out["lm_calls_without_usage"] = rec.lm_calls_without_usage
    out["lm_failure_summary"] = rec.lm_failure_summary
    for name in PHASES:
        p = rec.phase(name)
        out[f"{name}_wall_s"] = p.wall_s if p else None
        out[f"{name}_lm_calls"] = p.usage.lm_calls if p else None
        tokens = (p.usage.input_tokens, p.usage.output_tokens) if p else (None, None)
        out[f"{name}_tokens"] = None if None in tokens else sum(tokens)  # None: not measured (no usage)
    for k in TRAINING:
        out[f"training_{k}"] = getattr(rec.training, k) if rec.training else None
    eng = engine_cost([rec]) or {}
    for k in ("engine_ms_per_call", "dspy_ms_per_call", "engine_share_pct"):
        out[f"lm_{k}"] = eng.get(k)
    cost = optimization_cost(rec) if rec.status == "ok" else None
    for k, v in (cost.as_dict() if cost else {}).items():
        out[k if k.startswith("optimize_") else f"opt_{k}"] = v  # opt_lm_calls, ..., optimize_wall_s
    return out


def runs_frame(report: Report) -> pd.DataFrame:
    rows = [row(r) for r in report.runs]
    if not rows:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.DataFrame(rows)


def strategy_frame(report: Report) -> pd.DataFrame:
    """One row per (strategy, task): medians over ok repeats with spread and count (harness.aggregate), status counts."""
    agg = aggregate(report)
    status: dict[tuple[str, str], dict[str, int]] = {}
    for r in report.runs:
        status.setdefault(r.key, {}).setdefault(r.status, 0)
        status[r.key][r.status] += 1
    rows = []
    for key in dict.fromkeys(r.key for r in report.runs):
        stats = agg.get(key, {})
        row_: dict = {"strategy": key[0], "task": key[1],
                      "runs": sum(status[key].values()), "ok": status[key].get("ok", 0),
                      "status": ", ".join(f"{n} {s}" for s, n in status[key].items())}
        for metric, st in stats.items():
            row_[metric] = st
        rows.append(row_)
    return pd.DataFrame(rows)


def fmt_stat(st: Stat | None, digits: int = 3, money: bool = False) -> str:
    """'median' or 'median (spread x%, n=N)' for a folded metric (spread = (max - min) / median); '-' if unmeasured."""
    if st is None or (isinstance(st, float) and pd.isna(st)):
        return "-"
    v = st.median
    text = (f"${v:.4f}" if v < 1 else f"${v:,.2f}") if money else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.{digits}g}")
    if st.n > 1:
        spread = st.spread_pct
        text += f" (spread {spread:.0f}%, n={st.n})" if spread is not None else f" (n={st.n})"
    return text
