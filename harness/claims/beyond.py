"""The checks of the claims beyond the study (``beyond.toml``): GEPA against GRPO and MIPROv2 on the same task, and
DSPy's own projections (MIPROv2's ``_estimate_lm_calls``, GEPA's budget) against the measured figures. They are
registered in ``checks.CHECKS`` like the study's, and judged by ``results.result_of`` into ``ClaimsResult.beyond``."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from harness.claims.checks import check, fmt as _fmt
from harness.claims.costs import METHOD as COST_METHOD
from harness.claims.evidence import TOY_METRICS, Evidence
from harness.claims.spec import Claim
from harness.claims.verdict import Verdict, decided, untestable
from harness.record import RunRecord

DEFAULT_PATH = Path(__file__).with_name("beyond.toml")
GEPA, GRPO, MIPRO = "GEPA", "GRPO", "MIPROv2"
LABELS = {"rollouts": ("rollouts", "rollouts"), "optimize_wall_s": ("optimization wall time", "s"),
          "spend_usd": ("spend", "USD"), "lm_calls": ("LM calls", "calls"), "tokens": ("tokens", "tokens")}


def fmt(value: float, unit: str) -> str:
    """As checks.fmt, but small spends keep their digits and counts are whole numbers."""
    if unit == "USD" and value < 1:
        return f"${value:.4f}"
    if unit in ("calls", "tokens", "rollouts"):
        return f"{value:,.0f} {unit}"
    return _fmt(value, unit)


def _ok(ev: Evidence, strategy: str, settings: dict[str, Any] | None = None) -> dict[str, list[RunRecord]]:
    """task -> the ok runs of `strategy` on it with exactly these --set `settings` (None: the profile's own budgets,
    no variant)."""
    out: dict[str, list[RunRecord]] = {}
    for r in ev.report.runs:
        if r.strategy == strategy and r.status == "ok" and r.settings == (settings or {}):
            out.setdefault(r.task, []).append(r)
    return out


AUTO_LEVELS = ("light", "medium", "heavy")


def _auto_levels(ev: Evidence, *strategies: str) -> list[str]:
    """The auto= budget variants (--set X.auto=level, or a profile's variants) that every one of `strategies` ran."""
    def levels(s: str) -> set[str]:
        return {str(r.settings["auto"]) for r in ev.report.runs
                if r.strategy == s and r.status == "ok" and set(r.settings) == {"auto"}}

    common = set.intersection(*(levels(s) for s in strategies)) if strategies else set()
    return sorted(common, key=lambda x: (AUTO_LEVELS.index(x) if x in AUTO_LEVELS else 99, x))


def _record_cost(recs: list[RunRecord], measure: str) -> float | None:
    """The median over `recs` of one optimization-cost figure (harness.claims.costs), None where not measured."""
    from harness.claims.costs import optimization_cost

    vals = []
    for r in recs:
        cost = optimization_cost(r)
        v = None if cost is None else (cost.tokens if measure == "tokens" else getattr(cost, measure))
        vals.append(None if v is None or (measure in TOY_METRICS and r.toy_student) else v)
    return _median(vals)


def _median(vals: list[float | None]) -> float | None:
    vals = [float(v) for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def _cost(ev: Evidence, strategy: str, task: str, measure: str) -> float | None:
    df = ev.pairs()
    row = df[(df["strategy"] == strategy) & (df["task"] == task)] if not df.empty else df
    if row.empty or measure not in row.columns:
        return None
    v = row.iloc[0][measure]
    return None if v != v else float(v)  # NaN: not measured


def _rollouts(recs: list[RunRecord], strategy: str) -> float | None:
    if strategy == GEPA:
        return _median([r.budget.metric_calls if r.budget else None for r in recs])
    return _median([r.training.examples if r.training else None for r in recs])


def gepa_workload(recs: list[RunRecord]) -> str:
    b = recs[0].budget
    return f"GEPA {b.asked} (budget {b.metric_call_budget} metric calls)" if b else "GEPA (no budget block)"


def grpo_workload(recs: list[RunRecord]) -> str:
    t = recs[0].training
    if t is None:
        return "GRPO (no training block)"
    return f"GRPO {t.steps} steps, {t.examples} rollouts, student {t.student} ({t.mode}, {t.total_params:,} params, {t.device})"


def mipro_workload(recs: list[RunRecord]) -> str:
    from harness.strategies.prompt import MIPRO_QUICK

    if recs[0].settings.get("auto"):
        return f'MIPROv2 auto="{recs[0].settings["auto"]}"'
    if recs[0].profile == "quick":
        return "MIPROv2 " + ", ".join(f"{k}={v}" for k, v in MIPRO_QUICK.items())
    return 'MIPROv2 auto="light"'


def _ids(*groups: list[RunRecord]) -> list[str]:
    return [r.run_id for g in groups for r in g]


def _missing(ev: Evidence, *strategies: str) -> str | None:
    for s in strategies:
        if not _ok(ev, s):
            return f"no ok {s} run in this report (run `python -m harness bench --strategy {','.join(strategies)}`)"
    both = set.intersection(*(set(_ok(ev, s)) for s in strategies))
    if not both:
        return f"no task has ok runs of {' and '.join(strategies)} both"
    return None


def _ratio_text(x: float) -> str:
    return f"x{x:,.3g}"


@check("gepa_vs_grpo")
def _gepa_vs_grpo(claim: Claim, ev: Evidence) -> list[Verdict]:
    measure = claim.need("measure")
    published = float(claim.need("published"))
    why = _missing(ev, GEPA, GRPO)
    if why:
        return [untestable(claim, why)]
    gepa, grpo = _ok(ev, GEPA), _ok(ev, GRPO)
    label, unit = LABELS[measure]
    parts, ratios, skipped, ids, data = [], [], [], [], {}
    for task in sorted(set(gepa) & set(grpo)):
        if measure == "rollouts":
            a, b = _rollouts(gepa[task], GEPA), _rollouts(grpo[task], GRPO)
        else:
            a, b = _cost(ev, GEPA, task, measure), _cost(ev, GRPO, task, measure)
        work = f"profile {ev.report.profile}, {task}: {gepa_workload(gepa[task])} vs {grpo_workload(grpo[task])}"
        ids += _ids(gepa[task], grpo[task])
        if b is None and measure in TOY_METRICS and any(r.toy_student for r in grpo[task]):
            skipped.append(f"{task} (GRPO trained a random toy student: its {label} is not a real model's)")
            continue
        if a is None or b is None or a <= 0:
            skipped.append(f"{task} ({label} not measured for both, or GEPA's is 0)")
            continue
        r = b / a
        ratios.append(r)
        data[task] = {"gepa": a, "grpo": b, "ratio": r}
        gepa_text = f"{a:,.0f} metric calls" if measure == "rollouts" else fmt(a, unit)
        parts.append(f"{task}: GRPO {fmt(b, unit)} / GEPA {gepa_text} = {_ratio_text(r)} ({work})")
    if not ratios:
        return [untestable(claim, "; ".join(skipped), run_ids=ids)]
    figure = "; ".join(parts) + f". Published: x{published:g}"
    if skipped:
        figure += ". Not compared: " + "; ".join(skipped)
    if measure == "spend_usd":
        figure += (". Spend is each run's LM tokens at the report's price; GRPO's training compute on its student "
                   "is not priced")
    method = {"rollouts": "measured: GEPA's metric calls as it counted them (record `budget.metric_calls`: one program "
                          "run on one example) vs GRPO's rollouts trained on (record `training.examples`)",
              "optimize_wall_s": "measured: " + COST_METHOD,
              "spend_usd": "measured tokens at the record's price: " + COST_METHOD}[measure]
    return [decided(claim, min(ratios) > 1, figure, "measured",
                    rule=f"holds if GEPA's {label} is below GRPO's on every task where both ran (ratio > 1); the "
                         f"published x{published:g} is shown beside the measured ratio, not required",
                    method=method, run_ids=ids, data={"published": published, "tasks": data})]


def _scores(ev: Evidence, strategy: str) -> dict[str, tuple[float | None, float | None]]:
    return {t: (_median([r.score_before for r in recs]), _median([r.score_after for r in recs]))
            for t, recs in _ok(ev, strategy).items()}


@check("beyond_quality")
def _beyond_quality(claim: Claim, ev: Evidence) -> list[Verdict]:
    other = claim.need("other")
    why = _missing(ev, GEPA, other)
    if why:
        return [untestable(claim, why)]
    g, o = _scores(ev, GEPA), _scores(ev, other)
    ids = _ids(*[_ok(ev, GEPA)[t] for t in g], *[_ok(ev, other)[t] for t in o])

    def s(x):
        return "?" if x is None else f"{x:.1f}"

    scores = "; ".join(f"{t}: GEPA {s(g[t][0])} -> {s(g[t][1])}, {other} {s(o[t][0])} -> {s(o[t][1])}"
                       for t in sorted(set(g) & set(o)))
    reasons = []
    student = " ".join(str(claim.get("why_student", "")).split())
    if student:
        reasons.append(student)
    if ev.offline:
        reasons.append(f"the LM is the offline stand-in ({ev.report.lm}): its scores show that an optimizer did its "
                       "work, not its quality on a real model")
    if reasons:
        return [untestable(claim, "; ".join(reasons) + f". Scores (profile {ev.report.profile}): {scores}",
                           run_ids=ids)]
    gains = [(g[t][1] - o[t][1]) / o[t][1] for t in set(g) & set(o)
             if g[t][1] is not None and o[t][1] is not None and o[t][1] > 0]
    if not gains:
        return [untestable(claim, f"no task has both scores after compiling. Scores: {scores}", run_ids=ids)]
    mean = sum(gains) / len(gains)
    return [decided(claim, mean > 0.10, f"mean relative gain of GEPA over {other} {mean:+.1%} with {ev.report.lm} "
                    f"(profile {ev.report.profile}). Scores: {scores}", "measured",
                    rule="holds if GEPA's score after compiling is over 10% above the other's, averaged over tasks",
                    method="the test split's score after compiling, median over repeats", run_ids=ids)]


@check("gepa_vs_mipro")
def _gepa_vs_mipro(claim: Claim, ev: Evidence) -> list[Verdict]:
    """At the profile's budgets and at each auto= level both ran (the standard profile runs light, medium and
    heavy), per task: MIPROv2's LM calls, tokens and optimization wall time over GEPA's."""
    within = float(claim.need("within"))
    why = _missing(ev, GEPA, MIPRO)
    if why:
        return [untestable(claim, why)]
    levels: list[dict[str, Any] | None] = [None, *({"auto": a} for a in _auto_levels(ev, GEPA, MIPRO))]
    parts, ratios, ids, data = [], [], [], {}
    for level in levels:
        gepa, mipro = _ok(ev, GEPA, level), _ok(ev, MIPRO, level)
        name = "profile budgets" if level is None else f"auto={level['auto']}"
        for task in sorted(set(gepa) & set(mipro)):
            ids += _ids(gepa[task], mipro[task])
            row, cells = {}, []
            for m in ("lm_calls", "tokens", "optimize_wall_s"):
                a, b = _record_cost(gepa[task], m), _record_cost(mipro[task], m)
                if a is None or b is None or a <= 0:
                    continue
                r = b / a
                ratios.append((r, task, m, name))
                row[m] = {"gepa": a, "mipro": b, "ratio": r}
                cells.append(f"{LABELS[m][0]} MIPROv2 {fmt(b, LABELS[m][1])} / GEPA {fmt(a, LABELS[m][1])} = "
                             f"{_ratio_text(r)}")
            sg = _median([r.score_after for r in gepa[task]])
            sm = _median([r.score_after for r in mipro[task]])
            if sg is not None and sm is not None:
                cells.append(f"score after GEPA {sg:.1f}, MIPROv2 {sm:.1f}"
                             + (" (offline LM: not a quality figure)" if ev.offline else ""))
            data.setdefault(name, {})[task] = row
            parts.append(f"{name}, {task} ({gepa_workload(gepa[task])} vs {mipro_workload(mipro[task])}): "
                         + ", ".join(cells))
    if not ratios:
        return [untestable(claim, "no cost figure measured for both on any task", run_ids=ids)]
    out = [(r, t, m, lv) for r, t, m, lv in ratios if not (1 / within <= r <= within)]
    figure = f"profile {ev.report.profile}; " + "; ".join(parts)
    figure += (f". {len(out)} of {len(ratios)} figures outside x{1 / within:g}-x{within:g}" if out
               else f". Every figure within x{1 / within:g}-x{within:g}")
    return [decided(claim, not out, figure, "measured",
                    rule=f"holds if, at each budget both ran (the profile's, and each auto= level) and on every task, "
                         f"MIPROv2's LM calls, tokens and wall time over GEPA's lie within a factor {within:g} either "
                         "way (budgets matched in cost)",
                    method="measured: " + COST_METHOD, run_ids=ids,
                    data={"within": within, "levels": data,
                          "outside": [{"level": lv, "task": t, "measure": m, "ratio": r} for r, t, m, lv in out]})]


def _mipro_inputs(ev: Evidence, tasks: list[str]) -> tuple[dict[str, Any] | None, int | None, str]:
    """(MIPROv2's settings at this profile, {task: predictors}, where they came from), or (None, reason)."""
    sc = ev.scaling
    fi = getattr(sc, "formula_inputs", None) if sc is not None and sc.profile == ev.report.profile else None
    if fi and (fi.get("settings") or {}).get(MIPRO) and all(t in (fi.get("predictors") or {}) for t in tasks):
        return fi["settings"][MIPRO], fi["predictors"], f"settings and predictors from {sc.path}"
    from harness.claims import formulas  # imports DSPy for its defaults (as `harness scaling` does)

    got = formulas.inputs([MIPRO], tasks, ev.report.profile)
    return got["settings"][MIPRO], got["predictors"], f"settings read from dspy {got['dspy']} and harness/strategies/prompt.py"


@check("mipro_estimate")
def _mipro_estimate(claim: Claim, ev: Evidence) -> list[Verdict]:
    from harness.claims import formulas

    low, high = float(claim.need("low")), float(claim.need("high"))
    mipro = _ok(ev, MIPRO)
    if not mipro:
        return [untestable(claim, "no ok MIPROv2 run in this report")]
    tasks = sorted(mipro)
    try:
        settings, predictors, source = _mipro_inputs(ev, tasks)
    except Exception as exc:  # noqa: BLE001 - a task or DSPy not importable here: untestable, said why
        return [untestable(claim, f"MIPROv2's settings could not be read: {type(exc).__name__}: {exc}"[:300],
                           run_ids=_ids(*mipro.values()))]
    parts, ratios, data = [], [], {}
    for task in tasks:
        recs = mipro[task]
        n_dev = recs[0].n_dev
        measured = _median([r.phase("compile").usage.lm_calls if r.phase("compile") else None for r in recs])
        if n_dev is None or measured is None or task not in predictors:
            continue
        est = formulas.mipro_calls(settings, int(predictors[task]), int(n_dev))
        r = measured / est.calls if est.calls else float("inf")
        ratios.append(r)
        data[task] = {"projected": est.calls, "measured": measured, "ratio": r, "detail": est.detail}
        parts.append(f"{task} (profile {ev.report.profile}, n_dev {n_dev}): measured {measured:,.0f} compile calls vs "
                     f"projected {est.calls:,} ({est.detail}): measured/projected {r:.2f}")
    if not ratios:
        return [untestable(claim, "no MIPROv2 run with a compile phase and n_dev", run_ids=_ids(*mipro.values()))]
    ok = all(low <= r <= high for r in ratios)
    return [decided(claim, ok, "; ".join(parts), "measured + projected",
                    rule=f"holds if measured/projected lies within {low:g}-{high:g} on every task",
                    method=f"projected: {formulas.MIPRO_SOURCE} ({source}); measured: the compile phase's LM calls, "
                           f"median over repeats", run_ids=_ids(*mipro.values()),
                    data={"low": low, "high": high, "tasks": data})]


@check("gepa_budget")
def _gepa_budget(claim: Claim, ev: Evidence) -> list[Verdict]:
    low, high = float(claim.need("low")), float(claim.need("high"))
    runs = [r for r in ev.report.runs  # every budget asked, variants included: each is a projection of DSPy's
            if r.strategy == GEPA and r.status == "ok" and r.budget is not None]
    if not runs:
        return [untestable(claim, "no ok GEPA run with a budget block in this report")]
    parts, ratios, data = [], [], {}
    for r in sorted(runs, key=lambda x: x.run_id):
        b = r.budget
        ratio = b.metric_calls / b.metric_call_budget if b.metric_call_budget else float("inf")
        ratios.append(ratio)
        data[r.run_id] = {"asked": b.asked, "budget": b.metric_call_budget, "used": b.metric_calls, "ratio": ratio}
        over = b.metric_calls - b.metric_call_budget
        parts.append(f"{r.task} (profile {r.profile}, {b.asked}): {b.metric_calls:,} of {b.metric_call_budget:,} metric "
                     f"calls = {ratio:.3f}" + (f" ({over:+,} past the budget)" if over > 0 else ""))
    ok = all(low <= x <= high for x in ratios)
    figure = "; ".join(parts) + f". Largest used/budget {max(ratios):.3f}, smallest {min(ratios):.3f}"
    if max(ratios) > 1:
        figure += ". GEPA checks its budget between iterations, so a run ends up to one iteration past it"
    return [decided(claim, ok, figure, "measured + projected",
                    rule=f"holds if metric calls used / budget lies within {low:g}-{high:g} on every run (a budget is "
                         "a cap; far below it the budget over-projects)",
                    method="projected: the record's `budget.metric_call_budget` (for auto, GEPA.auto_budget's number); "
                           "measured: `budget.metric_calls`, GEPA's own count (GEPAState.total_num_evals)",
                    run_ids=[r.run_id for r in runs], data={"low": low, "high": high, "runs": data})]
