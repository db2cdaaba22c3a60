"""The study's tiers checked as an ordering of measured cost, and each strategy against its tier's band.

Ranks: within each task, strategies are ranked by a cost metric (ties share their mean rank) and the rank
becomes a percentile (0 = cheapest, 1 = dearest). A strategy's overall position is its mean percentile
over the tasks it ran on (AvatarOptimizer runs on one task only), ranked again across strategies.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.claims.costs import COST_METRICS, METHOD as COST_METHOD
from harness.claims.evidence import TOY_METRICS, Evidence
from harness.claims.spec import Claim
from harness.claims.stats import average_ranks, spearman
from harness.claims.verdict import Verdict, decided, untestable

MIN_STRATEGIES = 4


def percentile_table(pairs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows: strategy; columns: task -> percentile rank of `metric` within the task; plus `mean`."""
    df = pairs[pairs["tier_rank"].notna() & pairs[metric].notna()]
    cols = {}
    for task, g in df.groupby("task", sort=True):
        if len(g) < 2:
            continue
        r = average_ranks(g[metric].astype(float).tolist())
        cols[task] = pd.Series((r - 1) / (len(g) - 1), index=g["strategy"].tolist())
    table = pd.DataFrame(cols)
    if not table.empty:
        table["mean"] = table.mean(axis=1, skipna=True)
    return table


def tier_of(ev: Evidence) -> dict[str, int]:
    return {name: ev.claims.tier_rank(s.tier) for name, s in ev.claims.strategies.items()}


def order_stats(ev: Evidence, metric: str) -> dict:
    """Spearman's rho of tier against the metric per task and overall."""
    pairs = ev.pairs()
    tiers = tier_of(ev)
    out: dict = {"metric": metric, "per_task": {}, "overall": None}
    if pairs.empty:
        return out
    df = pairs[pairs["tier_rank"].notna() & pairs[metric].notna()]
    for task, g in df.groupby("task", sort=True):
        if len(g) >= MIN_STRATEGIES:
            s = spearman(g["tier_rank"].tolist(), g[metric].astype(float).tolist())
            out["per_task"][task] = {"rho": s.rho, "p": s.p_greater, "n": s.n}
    table = percentile_table(pairs, metric)
    if len(table) >= MIN_STRATEGIES:
        names = table.index.tolist()
        s = spearman([tiers[n] for n in names], table["mean"].tolist())
        out["overall"] = {"rho": s.rho, "p": s.p_greater, "n": s.n, "permutations": s.permutations}
    return out


def _fmt_rho(d: dict | None) -> str:
    if not d or d["rho"] is None or (isinstance(d["rho"], float) and math.isnan(d["rho"])):
        return "undefined"
    return f"{d['rho']:+.2f} (p={d['p']:.3f}, n={d['n']})"


def _basis(ev: Evidence, metrics: list[str]) -> str:
    return "measured + projected" if "spend_usd" in metrics and ev.offline else "measured"


def _caveat_weights(ev: Evidence) -> str:
    w = ev.ok("weights")
    if w.empty or w["trained_params"].dropna().empty:
        return ""
    p = int(w["trained_params"].dropna().max())
    dev = ",".join(sorted(set(w["training_device"].dropna())))
    return (f" The weight strategies trained a student of {p:,} parameters on {dev or 'the CPU'}: their ranks say "
            f"what they cost at that scale, not at LLM scale (see the weight fine-tuning claims).")


def toy_left_out(ev: Evidence, metric: str) -> str:
    """'; left out: ...' where runs that trained the random toy have no figure for this metric in the verdict."""
    if metric not in TOY_METRICS:
        return ""
    toys = sorted(set(ev.ok()[lambda d: d["toy_student"].astype(bool)]["strategy"]))
    return (f"; left out: {', '.join(toys)} (a random toy student: its time and RAM are not a real model's)"
            if toys else "")


def _student(ev: Evidence, name: str) -> str:
    w = ev.ok("weights")
    w = w[w["strategy"] == name].dropna(subset=["trained_params"])
    if w.empty:
        return "no training figures"
    if w["toy_student"].astype(bool).all():
        return (f"a random toy student of {int(w['trained_params'].max()):,} parameters: its time and RAM are left "
                "out, its LM calls and tokens are the teacher's")
    return (f"measured with a student of {int(w['trained_params'].max()):,} parameters on "
            f"{'/'.join(sorted(set(w['training_device'].dropna()))) or 'the CPU'}, not an LLM")


def order_verdicts(claim: Claim, ev: Evidence) -> list[Verdict]:
    metrics = list(claim.get("metrics", list(COST_METRICS)))
    alpha = float(claim.get("alpha", 0.05))
    out = []
    pairs = ev.pairs()
    for m in metrics:
        label, unit = COST_METRICS[m]
        sub = _sub(claim, m, label)
        st = order_stats(ev, m)
        if st["overall"] is None or math.isnan(st["overall"]["rho"]):
            why = (f"fewer than {MIN_STRATEGIES} strategies with a tier and a measured {label}"
                   if st["overall"] is None else f"{label} is the same for every strategy")
            out.append(untestable(sub, why))
            continue
        o = st["overall"]
        ok = o["rho"] > 0 and o["p"] < alpha
        per_task = "; ".join(f"{t} {_fmt_rho(d)}" for t, d in st["per_task"].items())
        figure = f"overall rho {_fmt_rho(o)}" + (f"; per task: {per_task}" if per_task else "") + toy_left_out(ev, m)
        ids = sorted({i for ids in pairs["run_ids"] for i in ids}) if not pairs.empty else []
        out.append(decided(sub, ok, figure, _basis(ev, [m]),
                           rule=f"holds if rho > 0 with one-sided permutation p < {alpha} "
                                f"({o['permutations']:,} permutations); contradicted otherwise",
                           method=f"Spearman's rho between tier rank (1 = {ev.claims.tiers[0]}) and {label} ({unit}); "
                                  "overall: mean within-task percentile rank per strategy. " + COST_METHOD
                                  + _caveat_weights(ev),
                           run_ids=ids, data=st))
    return out


def _sub(claim: Claim, metric: str, label: str) -> Claim:
    return Claim(id=f"{claim.id}.{metric}", section=claim.section, text=f"{claim.text} (cost: {label})",
                 study=claim.study, check=claim.check, params=claim.params)


def bands(strategies: list[str], tiers: dict[str, int]) -> dict[int, tuple[int, int]]:
    """Tier rank -> (first, last) overall cost rank its strategies would take if tiers ordered cost perfectly."""
    counts: dict[int, int] = {}
    for s in strategies:
        counts[tiers[s]] = counts.get(tiers[s], 0) + 1
    out, start = {}, 1
    for t in sorted(counts):
        out[t] = (start, start + counts[t] - 1)
        start += counts[t]
    return out


def placement_table(ev: Evidence, metrics: list[str]) -> dict[str, dict[str, float]]:
    """strategy -> metric -> overall cost rank (1 = cheapest) among the strategies with that metric."""
    pairs = ev.pairs()
    out: dict[str, dict[str, float]] = {}
    if pairs.empty:
        return out
    for m in metrics:
        table = percentile_table(pairs, m)
        if table.empty:
            continue
        ranks = average_ranks(table["mean"].tolist())
        for name, r in zip(table.index.tolist(), ranks):
            out.setdefault(name, {})[m] = float(r)
    return out


def placement_verdicts(claim: Claim, ev: Evidence) -> list[Verdict]:
    metrics = list(claim.get("metrics", list(COST_METRICS)))
    tol = float(claim.get("tolerance", 2))
    tiers = tier_of(ev)
    ranks = placement_table(ev, metrics)
    measured = [s for s in ranks if s in tiers]
    band = bands(measured, tiers)
    pairs = ev.pairs()
    out = []
    for name, s in ev.claims.strategies.items():
        sub = Claim(id=f"{claim.id}.{name}", section=claim.section,
                    text=claim.text.format(strategy=name, tier=s.tier, study_says=s.study_says),
                    study=claim.study.format(tier=s.tier), check=claim.check, params=claim.params)
        if name not in ranks:
            runs = ev.runs[ev.runs["strategy"] == name]
            if runs.empty:
                reason = "no run of this strategy in the report"
            else:
                bad = runs[runs["status"] != "ok"].iloc[0] if (runs["status"] != "ok").any() else None
                reason = (f"no ok run: {bad['status']} ({str(bad['error'])[:160]})" if bad is not None
                          else "no cost figure in its runs")
            out.append(untestable(sub, reason, run_ids=runs["run_id"].tolist()))
            continue
        lo, hi = band[tiers[name]]
        cells, outs = [], 0
        for m in metrics:
            if m not in ranks[name]:
                continue
            r = ranks[name][m]
            off = r < lo - tol or r > hi + tol
            outs += off
            cells.append(f"{COST_METRICS[m][0].split(' (')[0]} {r:g}" + ("*" if off else ""))
        n = len(cells)
        direction = ""
        mean_rank = sum(ranks[name].values()) / len(ranks[name])
        if outs * 2 > n:
            direction = " - cheaper than its tier" if mean_rank < lo else " - dearer than its tier"
        figure = (f"cost ranks of {len(measured)} (1 = cheapest): {', '.join(cells)}; {s.tier} band "
                  f"{lo}-{hi} (+/-{tol:g}); out of tier (*) on {outs} of {n}{direction}")
        if s.trains_weights:
            figure += f" ({_student(ev, name)})"
        ids = [i for ids in pairs[pairs["strategy"] == name]["run_ids"] for i in ids]
        caveat = _caveat_weights(ev) if s.trains_weights else ""
        out.append(decided(sub, outs * 2 <= n, figure, _basis(ev, metrics),
                           rule=f"out of tier: more than {tol:g} ranks outside the tier's band; contradicted if out "
                                "of tier on more than half of the metrics measured",
                           method="overall rank = rank of the mean within-task percentile of each cost metric. "
                                  + COST_METHOD + caveat,
                           run_ids=ids, key_runs=ids[:3],
                           data={"ranks": ranks[name], "band": [lo, hi], "tolerance": tol, "out_of_tier": outs,
                                 "strategies_ranked": len(measured)}))
    return out
