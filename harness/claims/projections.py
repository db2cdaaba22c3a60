"""Projections of the prompt strategies' measured LM use: money at hosted prices, time against a hosted
API, and both at larger train sets. Every number here is a projection, and its method says so.

- Money: the measured input and output tokens of each run's optimization (``harness.claims.costs``) times
  the per-token prices of DSPy's bundled price table (``harness.lm.pricing.price_of``).
- Time: ``(calls x time_to_first_token + output_tokens / output_tokens_per_s) / concurrency`` with the
  latency constants the claims file states as assumptions.
- Scale: least-squares lines through the points of ``OUT/scaling.json`` (``python -m harness scaling``: the
  profile's budgets at 3 or more train sizes, on every task), evaluated at the claims file's train-set sizes
  under the rules of ``project``: a line needs 3 sizes; a slope that is not positive and significant
  (one-sided t-test, p < 0.05) is "no growth measured" and projects the largest measured value; a projection
  is never below a value measured at a smaller train set (floored, and labelled so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.claims import formulas
from harness.claims.spec import ClaimsFile
from harness.claims.stats import LinearFit, linear_fit
from harness.errors import HarnessError

SCALING_FILE = "scaling.json"
SCALING_KIND = "dspy-resource-bench/scaling"

PRICE_METHOD = ("projected: the run's measured optimization tokens (input and output, counted where the LM served "
                "them) times the model's per-token prices in DSPy's bundled price table; no money was spent")
LATENCY_METHOD = ("projected: (LM calls x time to first token + output tokens / output tokens per second) / "
                  "concurrency, with assumed latency constants (claims file [assumptions.latency]); the offline LM's "
                  "own time is not in it")
FIT_MEASURES = ("lm_calls", "input_tokens", "output_tokens", "tokens", "spend_usd", "optimize_wall_s")
MIN_SIZES = 3  # a line through two points has R^2 = 1 whatever the data: never projected from
ALPHA = 0.05  # one-sided test of a positive slope
SCALING_METHOD = ("projected: per strategy and task, least-squares lines a + b * n_train through runs at 3 or more "
                  "train sizes at the profile's own budgets (scaling.json), evaluated at larger sizes. A slope that "
                  "is not positive and significant (one-sided t-test, p < 0.05) is 'no growth measured': the "
                  "projection is then the largest measured value. A projection is never below a value measured at "
                  "a smaller train set (floored, labelled). Extrapolation assumes the cost stays linear at these "
                  "budgets")
FEW_POINTS_NOTE = ("With 3 sizes the slope's test has 1 degree of freedom: it tells a slope that is large against "
                   "the points' scatter about the line (t > 6.3 for p < 0.05) from none, but it cannot tell a straight "
                   "line from a curve that bends beyond the sizes measured (a budget that caps the data used, such as "
                   "MIPROv2's validation set of at most 100, looks linear below the cap), so a projection 5x or 50x "
                   "beyond the largest size measured is a model, not a measurement")


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


def cost_value(cost: dict[str, Any] | None, measure: str) -> float | None:
    """A measure of a point's optimization cost (scaling.json version 1 named optimize_wall_s `wall_s`)."""
    if not cost:
        return None
    value = cost.get(measure, cost.get("wall_s") if measure == "optimize_wall_s" else None)
    return None if value is None else float(value)


def growth_of(fit: LinearFit) -> str:
    """"growth measured", "no growth measured" or "too few sizes" (fewer than MIN_SIZES distinct n_train)."""
    if fit.sizes < MIN_SIZES:
        return "too few sizes"
    if fit.b > 0 and fit.p_slope is not None and fit.p_slope < ALPHA:
        return "growth measured"
    return "no growth measured"


@dataclass(frozen=True)
class Line:
    """One (strategy, task, measure): its points and the least-squares line through them."""

    strategy: str
    task: str
    measure: str
    points: tuple[tuple[float, float], ...]  # (n_train, value), repeats kept
    fit: LinearFit

    @property
    def growth(self) -> str:
        return growth_of(self.fit)

    @property
    def sizes(self) -> list[int]:
        return sorted({int(x) for x, _ in self.points})

    def describe(self) -> str:
        """The fit's quality in one phrase: slope with its interval, R^2 and the slope's p-value."""
        f = self.fit
        if f.sizes < MIN_SIZES:
            return f"{f.sizes} sizes ({', '.join(map(str, self.sizes))}): not fitted for projection, {MIN_SIZES} needed"
        ci = f"95% CI {f.ci_b[0]:+,.3g} to {f.ci_b[1]:+,.3g}" if f.ci_b else "no CI"
        r2 = "R^2 n/a (constant)" if f.r2 is None else f"R^2 {f.r2:.3f}"
        p = "p n/a" if f.p_slope is None else f"p {f.p_slope:.2g}"
        return f"slope {f.b:+,.3g}/example ({ci}), {r2}, {p}, sizes {', '.join(map(str, self.sizes))}"


def _lines(points: list[dict[str, Any]]) -> dict[tuple[str, str, str], Line]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in points:
        if p.get("status") == "ok" and p.get("cost") is not None and p.get("n_train") is not None:
            groups.setdefault((p["strategy"], p["task"]), []).append(p)
    lines = {}
    for (strategy, task), pts in sorted(groups.items()):
        for measure in FIT_MEASURES:
            xy = tuple((float(p["n_train"]), v) for p in pts if (v := cost_value(p["cost"], measure)) is not None)
            fit = linear_fit([x for x, _ in xy], [y for _, y in xy]) if xy else None
            if fit is not None:
                lines[(strategy, task, measure)] = Line(strategy, task, measure, xy, fit)
    return lines


def fit_lines(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One fit per (strategy, task, measure) over the ok points with at least two distinct n_train, as JSON."""
    out = []
    for (strategy, task, measure), line in _lines(points).items():
        out.append({"strategy": strategy, "task": task, "measure": measure, "x": "n_train", **line.fit.as_dict(),
                    "sizes": line.sizes, "growth": line.growth, "quality": line.describe()})
    return out


@dataclass(frozen=True)
class Projected:
    """A projection at one n_train, with the rule that made it."""

    value: float | None  # None: refused
    rule: str  # "fitted line", "floored", "no growth measured", "refused"
    label: str
    line_value: float | None = None  # a + b * n, unfloored
    interval: tuple[float, float] | None = None  # 95% CI of the line at n (growth measured only)


def project(line: Line, n: float, floor_points: tuple[tuple[float, float], ...] = ()) -> Projected:
    """The value of `line` at n under the rules of SCALING_METHOD; `floor_points` are further measured values
    (the report's own runs) that the projection may not fall below when measured at n_train <= n."""
    pts = (*line.points, *floor_points)
    if line.growth == "too few sizes":
        return Projected(None, "refused", f"not projected: {line.fit.sizes} sizes measured, {MIN_SIZES} needed")
    raw = line.fit.at(n)
    if line.growth == "no growth measured":
        x, y = max(pts, key=lambda p: (p[1], p[0]))
        return Projected(y, "no growth measured", f"no growth measured ({line.describe()}): the largest measured "
                                                  f"value, at n_train={x:,.0f}", raw)
    smaller = [p for p in pts if p[0] <= n]
    fx, floor = max(smaller, key=lambda p: (p[1], p[0])) if smaller else (None, None)
    if floor is not None and raw < floor:
        return Projected(floor, "floored", f"floored at the value measured at n_train={fx:,.0f} (the line gives "
                                           f"{raw:,.4g}; {line.describe()})", raw)
    return Projected(raw, "fitted line", f"fitted line ({line.describe()})", raw, line.fit.interval(n))


@dataclass
class Scaling:
    path: str
    profile: str
    sizes: list[int]
    runs: list[dict[str, Any]] = field(default_factory=list)
    method: list[str] = field(default_factory=list)
    formula_inputs: dict[str, Any] = field(default_factory=dict)
    lines: dict[tuple[str, str, str], Line] = field(default_factory=dict)

    def line(self, strategy: str, task: str, measure: str) -> Line | None:
        return self.lines.get((strategy, task, measure))

    def pairs(self) -> list[tuple[str, str]]:
        return sorted({(s, t) for s, t, _ in self.lines})

    def tasks(self, strategy: str | None = None) -> list[str]:
        return sorted({t for s, t in self.pairs() if strategy is None or s == strategy})

    def records(self, strategy: str, task: str) -> list[str]:
        """The run records (paths relative to OUT, or report.json#run) a line rests on."""
        return [r["record"] for r in self.runs if r["strategy"] == strategy and r["task"] == task]

    def bench_sizes(self, strategy: str, task: str) -> list[int]:
        return sorted({int(r["n_train"]) for r in self.runs if r["strategy"] == strategy and r["task"] == task
                       and r.get("source") == "bench" and r.get("status") == "ok"})


def _checked_runs(data: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    from harness.load import SchemaError, finite

    runs = data.get("runs")
    if not isinstance(runs, list):
        raise SchemaError(f"scaling file {path}: field runs must be a list")
    for i, r in enumerate(runs):
        where = f"scaling file {path}: runs.{i}"
        if not isinstance(r, dict) or not all(isinstance(r.get(k), str) for k in ("strategy", "task", "status")):
            raise SchemaError(f"{where} needs the strings strategy, task and status")
        if r["status"] == "ok":
            finite(r.get("n_train"), f"{where}.n_train")
            cost = r.get("cost")
            if not isinstance(cost, dict):
                raise SchemaError(f"{where}.cost must be an object for an ok run")
            for k, v in cost.items():
                if v is not None:
                    finite(v, f"{where}.cost.{k}")
        r.setdefault("record", "")
    return runs


def load_scaling(folder_or_file: str | Path | None) -> Scaling | None:
    """OUT/scaling.json, its lines fitted again from its points; None when there is none. A file that is
    there but cannot be used raises SchemaError (one line naming the file and the field)."""
    from harness.load import read_kind

    if folder_or_file is None:
        return None
    path = Path(folder_or_file)
    if path.is_dir():
        path = path / SCALING_FILE
    if not path.exists():
        return None
    data = read_kind(path, "scaling file", SCALING_KIND)
    runs = _checked_runs(data, path)
    return Scaling(path=str(path), profile=str(data.get("profile", "quick")), sizes=list(data.get("sizes", [])),
                   runs=runs, method=list(data.get("method", [])), formula_inputs=dict(data.get("formula_inputs") or {}),
                   lines=_lines(runs))


def measured_floors(runs: pd.DataFrame) -> dict[tuple[str, str, str], tuple[tuple[float, float], ...]]:
    """{(strategy, task, measure): ((n_train, value), ...)} from a report's ok runs (evidence rows)."""
    out: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for _, r in runs.iterrows():
        if pd.isna(r.get("n_train")):
            continue
        for m in FIT_MEASURES:
            v = r.get(m)
            if v is not None and not pd.isna(v):
                out.setdefault((r["strategy"], r["task"], m), []).append((float(r["n_train"]), float(v)))
    return {k: tuple(v) for k, v in out.items()}


def scaled_projections(scaling: Scaling, claims: ClaimsFile, sizes: list[int], strategies: set[str] | None = None,
                       floors: dict[tuple[str, str, str], tuple[tuple[float, float], ...]] | None = None) -> pd.DataFrame:
    """One row per (strategy, task, n_train, model): calls, tokens, spend, optimization wall time and API time
    projected under `project`, each with its rule and the calls line's quality. Lines with fewer than
    MIN_SIZES sizes give no row (see `refused`)."""
    table, _ = prices(claims)
    lat = latencies(claims)
    conc = concurrencies(claims)
    floors = floors or {}
    rows = []
    for strategy, task in scaling.pairs():
        if strategies is not None and strategy not in strategies:
            continue
        lines = {m: scaling.line(strategy, task, m) for m in ("lm_calls", "input_tokens", "output_tokens",
                                                              "optimize_wall_s")}
        if any(v is None for k, v in lines.items() if k != "optimize_wall_s"):
            continue
        for n in sizes:
            got = {m: project(line, n, floors.get((strategy, task, m), ())) for m, line in lines.items() if line}
            calls, tin, tout = got["lm_calls"], got["input_tokens"], got["output_tokens"]
            if None in (calls.value, tin.value, tout.value):
                continue
            wall = got.get("optimize_wall_s")
            base = {"strategy": strategy, "task": task, "tasks_label": task, "profile": scaling.profile, "n_train": n,
                    "lm_calls": calls.value, "input_tokens": tin.value, "output_tokens": tout.value,
                    "optimize_wall_s": wall.value if wall else None, "wall_rule": wall.rule if wall else None,
                    "calls_rule": calls.rule, "calls_label": calls.label, "calls_line": calls.line_value,
                    "calls_ci95": list(calls.interval) if calls.interval else None,
                    "tokens_rule": tin.rule if tin.rule == tout.rule else f"input {tin.rule}, output {tout.rule}",
                    "calls_r2": lines["lm_calls"].fit.r2, "calls_slope": lines["lm_calls"].fit.b,
                    "calls_p": lines["lm_calls"].fit.p_slope,
                    "calls_growth": lines["lm_calls"].growth, "fit_sizes": lines["lm_calls"].sizes,
                    "bench_sizes": scaling.bench_sizes(strategy, task),
                    "extrapolation": n / max(lines["lm_calls"].fit.x_max, 1)}
            for model, price in table.items():
                row = {**base, "model": model, "spend_usd": price.cost(tin.value, tout.value)}
                for c in conc:
                    row[f"api_time_s_c{c}"] = lat[model].seconds(calls.value, tout.value, c) if model in lat else None
                rows.append(row)
    return pd.DataFrame(rows)


def refused(scaling: Scaling) -> list[str]:
    """The lines not projected, each with why (fewer than MIN_SIZES sizes)."""
    return [f"{s} on {t}: {line.describe()}" for (s, t, m), line in scaling.lines.items()
            if m == "lm_calls" and line.growth == "too few sizes"]


def measured_rows(scaling: Scaling) -> list[dict[str, Any]]:
    """Per (strategy, task, n_train): the median measured calls, tokens, spend (at the record's priced_as) and
    optimization wall time of the points, and where they came from (the bench or the scaling runs)."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in scaling.runs:
        if r.get("status") == "ok" and r.get("cost"):
            groups.setdefault((r["strategy"], r["task"], int(r["n_train"])), []).append(r)
    rows = []
    for (strategy, task, n), pts in sorted(groups.items()):
        row = {"strategy": strategy, "task": task, "n_train": n, "repeats": len(pts),
               "source": ", ".join(sorted({p.get("source", "scaling") for p in pts})),
               "priced_as": pts[0].get("priced_as")}
        for m in ("lm_calls", "tokens", "spend_usd", "optimize_wall_s"):
            vals = [v for p in pts if (v := cost_value(p["cost"], m)) is not None]
            row[m] = float(pd.Series(vals).median()) if vals else None
        rows.append(row)
    return rows


def formula_rows(scaling: Scaling, sizes: list[int]) -> list[dict[str, Any]]:
    """Per strategy with a known formula (harness.claims.formulas), task and n_train (every size measured and
    every projected one): the optimizer's own count, the fitted line, the projection and the measured calls."""
    rows = []
    for strategy, task in scaling.pairs():
        line = scaling.line(strategy, task, "lm_calls")
        if line is None or not formulas.has_formula(strategy):
            continue
        measured: dict[int, list[float]] = {}
        for x, y in line.points:
            measured.setdefault(int(x), []).append(y)
        for n in sorted({*measured, *sizes}):
            count = formulas.calls(strategy, scaling.formula_inputs, task, n)
            proj = project(line, n) if n not in measured else None
            vals = sorted(measured.get(n, []))
            rows.append({"strategy": strategy, "task": task, "n_train": n, "measured": vals[len(vals) // 2] if vals else None,
                         "formula": count.calls if count else None, "formula_detail": count.detail if count else None,
                         "formula_source": count.source if count else None, "line": line.fit.at(n),
                         "projected": proj.value if proj else None, "rule": proj.rule if proj else "measured",
                         "quality": line.describe()})
    return rows
