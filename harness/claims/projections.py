"""Projections of the prompt strategies' measured LM use: money at hosted prices, time against a hosted
API, and both at larger train sets. Every number here is a projection, and its method says so.

- Money: the measured input and output tokens of each run's optimization (``harness.claims.costs``) times
  the per-token prices of DSPy's bundled price table (``harness.lm.pricing.price_of``).
- Time: ``(calls x time_to_first_token + output_tokens / output_tokens_per_s) / concurrency`` with the
  latency constants the claims file states as assumptions.
- Scale: the least-squares lines of ``OUT/scaling.json`` (``python -m harness scaling``), evaluated at the
  claims file's train-set sizes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.claims.spec import ClaimsFile
from harness.errors import HarnessError

SCALING_FILE = "scaling.json"
SCALING_KIND = "dspy-resource-bench/scaling"

PRICE_METHOD = ("projected: the run's measured optimization tokens (input and output, counted where the LM served "
                "them) times the model's per-token prices in DSPy's bundled price table; no money was spent")
LATENCY_METHOD = ("projected: (LM calls x time to first token + output tokens / output tokens per second) / "
                  "concurrency, with assumed latency constants (claims file [assumptions.latency]); the offline LM's "
                  "own time is not in it")
SCALING_METHOD = ("projected: per strategy and task, least-squares lines a + b * n_train fitted to runs at several "
                  "train sizes (scaling.json) and evaluated at larger sizes; extrapolation assumes the cost stays "
                  "linear at the quick profile's budgets")


@dataclass(frozen=True)
class Latency:
    model: str
    ttft_s: float
    output_tokens_per_s: float

    def seconds(self, calls: float, output_tokens: float, concurrency: int = 1) -> float:
        return (calls * self.ttft_s + output_tokens / self.output_tokens_per_s) / max(1, concurrency)


def latencies(claims: ClaimsFile) -> dict[str, Latency]:
    models = claims.assumption("latency", "models", default={}) or {}
    return {m: Latency(m, float(v["ttft_s"]), float(v["output_tokens_per_s"])) for m, v in models.items()}


def concurrencies(claims: ClaimsFile) -> list[int]:
    return [int(c) for c in claims.assumption("latency", "concurrency", default=[1])]


def prices(claims: ClaimsFile) -> tuple[dict[str, Any], list[str]]:
    """{model: Price} for the claims file's price models, and a note per model without a price."""
    from harness.lm.pricing import price_of

    out, notes = {}, []
    for model in claims.assumption("prices", "models", default=[]):
        try:
            out[model] = price_of(model)
        except HarnessError as exc:
            notes.append(str(exc))
    return out, notes


# --------------------------------------------------------------------------- measured runs, priced and timed


def run_projections(pairs: pd.DataFrame, claims: ClaimsFile) -> pd.DataFrame:
    """One row per (strategy, task, model): projected spend and hosted-API time of the measured optimization."""
    table, _ = prices(claims)
    lat = latencies(claims)
    conc = concurrencies(claims)
    rows = []
    for _, p in pairs.iterrows():
        if p["input_tokens"] is None or pd.isna(p["input_tokens"]):
            continue
        for model, price in table.items():
            row = {"strategy": p["strategy"], "task": p["task"], "model": model, "lm_calls": p["lm_calls"],
                   "input_tokens": p["input_tokens"], "output_tokens": p["output_tokens"],
                   "spend_usd": price.cost(p["input_tokens"], p["output_tokens"]), "run_ids": p["run_ids"]}
            for c in conc:
                row[f"api_time_s_c{c}"] = lat[model].seconds(p["lm_calls"], p["output_tokens"], c) \
                    if model in lat else None
            rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- scaling fits


@dataclass
class Scaling:
    path: str
    sizes: list[int]
    fits: dict[tuple[str, str, str], dict[str, Any]]  # (strategy, task, measure) -> fit
    runs: list[dict[str, Any]] = field(default_factory=list)
    method: list[str] = field(default_factory=list)

    def fit(self, strategy: str, task: str, measure: str) -> dict[str, Any] | None:
        return self.fits.get((strategy, task, measure))

    def pairs(self) -> list[tuple[str, str]]:
        return sorted({(s, t) for s, t, _ in self.fits})

    def records(self, strategy: str, task: str) -> list[str]:
        """The run records (paths relative to OUT) a fit rests on."""
        return [r["record"] for r in self.runs if r["strategy"] == strategy and r["task"] == task]


def load_scaling(folder_or_file: str | Path | None) -> Scaling | None:
    if folder_or_file is None:
        return None
    path = Path(folder_or_file)
    if path.is_dir():
        path = path / SCALING_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("kind") != SCALING_KIND:
        return None
    fits = {(f["strategy"], f["task"], f["measure"]): f for f in data.get("fits", [])}
    return Scaling(path=str(path), sizes=list(data.get("sizes", [])), fits=fits, runs=list(data.get("runs", [])),
                   method=list(data.get("method", [])))


def _at(fit: dict[str, Any] | None, n: float) -> float | None:
    if fit is None:
        return None
    return max(0.0, fit["a"] + fit["b"] * n)


def scaled_projections(scaling: Scaling, claims: ClaimsFile, sizes: list[int],
                       strategies: set[str] | None = None) -> pd.DataFrame:
    """One row per (strategy, task, n_train, model): calls, tokens, spend and API time from the fits."""
    table, _ = prices(claims)
    lat = latencies(claims)
    conc = concurrencies(claims)
    rows = []
    for strategy, task in scaling.pairs():
        if strategies is not None and strategy not in strategies:
            continue
        f_calls = scaling.fit(strategy, task, "lm_calls")
        f_in = scaling.fit(strategy, task, "input_tokens")
        f_out = scaling.fit(strategy, task, "output_tokens")
        if f_calls is None or f_in is None or f_out is None:
            continue
        for n in sizes:
            calls, tin, tout = _at(f_calls, n), _at(f_in, n), _at(f_out, n)
            for model, price in table.items():
                row = {"strategy": strategy, "task": task, "n_train": n, "model": model, "lm_calls": calls,
                       "input_tokens": tin, "output_tokens": tout, "spend_usd": price.cost(tin, tout),
                       "calls_r2": f_calls["r2"], "calls_slope": f_calls["b"], "fit_sizes": f_calls.get("sizes"),
                       "extrapolation": n / max(f_calls.get("x_max") or 1, 1)}
                for c in conc:
                    row[f"api_time_s_c{c}"] = lat[model].seconds(calls, tout, c) if model in lat else None
                rows.append(row)
    return pd.DataFrame(rows)
