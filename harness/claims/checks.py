"""One function per kind of check named in claims.toml (`check = "..."`). Each turns a claim and the
evidence into verdicts; the rules and figures they use come from the claims file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from harness import registry
from harness.claims import analytic, memory_data, projections, tiers, training_cost
from harness.claims.costs import METHOD as COST_METHOD
from harness.claims.evidence import MIB_TO_GB, Evidence
from harness.claims.spec import Claim
from harness.claims.verdict import RANGE_RULES, Verdict, decided, judge_range, untestable

CHECKS: dict[str, Callable[[Claim, Evidence], list[Verdict]]] = {}


def check(name: str):
    def register(fn):
        CHECKS[name] = fn
        return fn
    return register


def fmt(value: float, unit: str) -> str:
    if unit == "USD":
        return f"${value:,.2f}" if value < 100 else f"${value:,.0f}"
    if unit == "s":
        if value < 120:
            return f"{value:.1f} s"
        if value < 2 * 3600:
            return f"{value / 60:.1f} min"
        if value < 2 * 86400:
            return f"{value / 3600:.1f} h"
        return f"{value / 86400:.1f} days"
    if unit == "GB":
        return f"{value:,.3g} GB" if value < 1000 else f"{value / 1000:,.3g} TB"
    return f"{value:,.3g} {unit}"


@dataclass(frozen=True)
class Case:
    value: float
    label: str
    run_ids: tuple[str, ...] = ()
    basis: str = "measured"


def _bases(cases: list[Case]) -> str:
    kinds = {c.basis for c in cases}
    return "measured + projected" if len(kinds) > 1 else kinds.pop()


def _range_verdict(claim: Claim, cases: list[Case], method: str, extra: str = "") -> Verdict:
    low, high, unit, bound = float(claim.need("low")), float(claim.need("high")), claim.need("unit"), claim.need("bound")
    lo, hi = min(cases, key=lambda c: c.value), max(cases, key=lambda c: c.value)
    j = judge_range(lo.value, hi.value, low, high, bound)
    inside = [c for c in cases if low <= c.value <= high]
    if len(cases) == 1:
        figure = f"{fmt(hi.value, unit)} ({hi.label}); {j.note}"
    else:
        figure = (f"largest {fmt(hi.value, unit)} ({hi.label}); smallest {fmt(lo.value, unit)} ({lo.label}); "
                  f"{len(inside)} of {len(cases)} cases inside {fmt(low, unit)}-{fmt(high, unit)}; {j.note}")
    if extra:
        figure += f". {extra}"
    ids = sorted({i for c in cases for i in c.run_ids})
    return decided(claim, j.ok, figure, _bases(cases), rule=RANGE_RULES[bound], method=method, run_ids=ids,
                   key_runs=[i for i in dict.fromkeys([*hi.run_ids[:2], *lo.run_ids[:2]])],
                   data={"low": low, "high": high, "unit": unit, "bound": bound, "position": j.position,
                         "min": lo.value, "min_case": lo.label, "max": hi.value, "max_case": hi.label,
                         "cases": len(cases), "inside": len(inside)})


# --------------------------------------------------------------------------- simple kinds


@check("untestable")
def _untestable(claim: Claim, ev: Evidence) -> list[Verdict]:
    return [untestable(claim, claim.need("reason"))]


@check("tier_order")
def _tier_order(claim: Claim, ev: Evidence) -> list[Verdict]:
    return tiers.order_verdicts(claim, ev)


@check("tier_placement")
def _tier_placement(claim: Claim, ev: Evidence) -> list[Verdict]:
    return tiers.placement_verdicts(claim, ev)


# --------------------------------------------------------------------------- prompt-side ranges


def _label(row) -> str:
    return f"{row['strategy']} on {row['task']}"


def _method_of(ev: Evidence, field: str) -> str:
    methods = {getattr(r.measurement, field) for r in ev.report.runs if r.status == "ok"} - {None}
    return "; ".join(sorted(methods))


def _gpu_cases(ev: Evidence, df: pd.DataFrame) -> tuple[list[Case], str] | str:
    ids = tuple(i for ids in df["run_ids"] for i in ids)
    if not ev.machine_has_gpu:
        note = ev.report.machine.gpu_note or "no GPU"
        return [Case(0.0, f"{len(df)} strategy-task pairs completed on a machine with no GPU ({note})", ids)], \
            "measured: the runs completed with no GPU present (report.machine.gpus is empty), so the GPU memory they need is 0"
    vals = ev.ok("prompt")[["run_id", "strategy", "task", "gpu_peak_mb"]].dropna()
    if vals.empty:
        return "the machine has a GPU but the runs recorded no GPU figure"
    return [Case(r.gpu_peak_mb * MIB_TO_GB, f"{r.strategy} on {r.task}", (r.run_id,)) for r in vals.itertuples()], \
        "measured: " + _method_of(ev, "gpu_method")


def _prompt_cases(claim: Claim, ev: Evidence, df: pd.DataFrame) -> tuple[list[Case], str, str] | str:
    """(cases, method, extra note) for a prompt-side measure, or the reason it cannot be tested."""
    measure = claim.need("measure")

    def pid(row) -> tuple[str, ...]:
        return tuple(row["run_ids"])

    if measure == "gpu_gb":
        got = _gpu_cases(ev, df)
        return got if isinstance(got, str) else (*got, "")
    if measure == "ram_gb":
        return [Case(r["peak_rss_mb"] * MIB_TO_GB, _label(r), pid(r)) for _, r in df.iterrows()], \
            "measured: peak RSS of the run's process tree - " + _method_of(ev, "peak_rss_method"), ""
    if measure == "disk_gb":
        return [Case(r["disk_written_mb"] * MIB_TO_GB, _label(r), pid(r)) for _, r in df.iterrows()], \
            "measured: " + _method_of(ev, "disk_method") + " (the installed software and model files are not counted)", ""
    if measure in ("time_s", "spend_usd"):
        return _projected_prompt_cases(claim, ev, df, measure)
    raise ValueError(f"claim {claim.id}: unknown measure {measure!r}")


def _projected_prompt_cases(claim: Claim, ev: Evidence, df: pd.DataFrame, measure: str):
    conc = int(ev.claims.assumption("latency", "verdict_concurrency", default=projections.concurrencies(ev.claims)[0]))
    col = f"api_time_s_c{conc}"
    cases: list[Case] = []
    real = not ev.offline  # a real LM's wall time already holds its latency: measured, never projected again
    if measure == "time_s" and real:
        cases += [Case(r["optimize_wall_s"], _label(r) + f", {ev.report.lm}", tuple(r["run_ids"]))
                  for _, r in df.iterrows()]
    elif measure == "spend_usd" and real:
        cases += [Case(r["spend_usd"], _label(r) + f" at {ev.report.priced_as}", tuple(r["run_ids"]))
                  for _, r in df.iterrows() if pd.notna(r["spend_usd"])]
    if measure == "spend_usd" or not real:
        proj = projections.run_projections(df, ev.claims)
        walls = {(r["strategy"], r["task"]): r["optimize_wall_s"] for _, r in df.iterrows()}
        for _, p in proj.iterrows():
            ids = tuple(p["run_ids"])
            if measure == "spend_usd":
                cases.append(Case(p["spend_usd"], f"{p['strategy']} on {p['task']} at {p['model']}", ids, "projected"))
            elif pd.notna(p[col]):
                own = walls[(p["strategy"], p["task"])]
                cases.append(Case(own + p[col], f"{p['strategy']} on {p['task']} against {p['model']}", ids,
                                  "projected"))
    if measure == "spend_usd":
        method = projections.PRICE_METHOD
    elif real:
        method = f"measured: the optimization's wall time with the real LM {ev.report.lm}"
    else:
        method = f"measured optimizer wall time + {projections.LATENCY_METHOD} (concurrency {conc})"
    extra = f"At this report's workload (profile {ev.report.profile}, n_train {_ntrain(df, ev)})"
    sizes = list(ev.claims.assumption("scaling", "verdict_train_sizes", default=[]))
    scaling, why_not = usable_scaling(ev)
    if scaling is not None and sizes:
        scaled = projections.scaled_projections(scaling, ev.claims, sizes, set(df["strategy"]),
                                                projections.measured_floors(ev.ok("prompt")))
        for _, p in scaled.iterrows():
            label = (f"{p['strategy']} on {p['task']} at n_train={p['n_train']:,} with {p['model']}, projected "
                     f"({p['calls_rule']}, {scaling.profile} profile)")
            wall = p["optimize_wall_s"]
            if measure == "spend_usd":
                value = p["spend_usd"]
            elif pd.isna(wall):
                continue  # no usable line of the optimizer's own time: never count it as 0 s
            elif real:
                value = wall  # a real LM's wall time holds its latency
            elif pd.notna(p[col]):
                value = wall + p[col]
            else:
                continue
            cases.append(Case(value, label, tuple(scaling.records(p["strategy"], p["task"])), "projected"))
        method += f"; and {projections.SCALING_METHOD} ({scaling.path}, to n_train {sizes})"
        extra += f" and projected to n_train {', '.join(f'{n:,}' for n in sizes)} on " \
                 f"{', '.join(scaling.tasks())} at the {scaling.profile} profile's budgets"
        gone = projections.refused(scaling)
        if gone:
            extra += f"; not projected ({len(gone)} lines with fewer than {projections.MIN_SIZES} sizes): " + "; ".join(gone[:3])
    else:
        extra += f"; larger train sets not projected ({why_not})"
    return cases, method + ". " + COST_METHOD, extra


def usable_scaling(ev: Evidence):
    """(scaling, None) when OUT/scaling.json is of this report's profile, else (None, why not)."""
    if ev.scaling is None:
        return None, "no scaling.json beside the report: run `python -m harness scaling --profile " \
                     f"{ev.report.profile}`"
    if ev.scaling.profile != ev.report.profile:
        return None, (f"{ev.scaling.path} was measured at the {ev.scaling.profile} profile's budgets, this report at "
                      f"the {ev.report.profile} profile's: not used")
    return ev.scaling, None


def _ntrain(df: pd.DataFrame, ev: Evidence) -> str:
    vals = sorted(set(ev.ok("prompt")["n_train"].dropna().astype(int)))
    return ", ".join(map(str, vals)) or "?"


@check("range")
def _range(claim: Claim, ev: Evidence) -> list[Verdict]:
    scope = claim.get("scope", "prompt")
    df = ev.pairs(scope)
    if df.empty:
        return [untestable(claim, f"no ok run of a {scope} strategy in this report")]
    got = _prompt_cases(claim, ev, df)
    if isinstance(got, str):
        return [untestable(claim, got)]
    cases, method, extra = got
    if not cases:
        return [untestable(claim, "no figure for this measure in the report")]
    return [_range_verdict(claim, cases, method, extra)]


# --------------------------------------------------------------------------- weight fine-tuning, projected


def _validation_note(ev: Evidence) -> str:
    notes = []
    if ev.memory is not None:
        for s in memory_data.slope_agreement(ev.memory):
            if s["ratio"]:
                notes.append(f"make bench-memory {s['device']}/{s['mode']}: measured slope {s['measured_bytes_per_param']:.1f} "
                             f"B/param vs analytic {s['analytic_bytes_per_param']:.1f} (measured/analytic {s['ratio']:.2f})")
    else:
        notes.append("no measurement here (no finetune_memory.json beside the report: run make bench-memory)")
    for lit in literature_agreement(ev):
        notes.append(f"{lit['name']}: published {lit['published_gb']:g} GB vs analytic {lit['analytic_gb']:.0f} GB "
                     f"(published/analytic {lit['ratio']:.2f})")
    return "Analytic model checked against: " + "; ".join(notes)


def literature_agreement(ev: Evidence) -> list[dict]:
    out = []
    for lit in ev.claims.literature:
        arch = analytic.ARCHS.get(lit["size"])
        if arch is None:
            continue
        cfg = analytic.Config(regime=lit.get("regime", "mixed-bf16-adamw"), batch=int(lit.get("batch", 1)),
                              seq=int(lit.get("seq", 512)), checkpointing=bool(lit.get("checkpointing", True)),
                              qlora_rank=int(training_cost.finetune_config(ev.claims).qlora_rank))
        est = analytic.estimate(arch, lit["mode"], cfg)
        out.append({"name": lit["name"], "published_gb": float(lit["gb"]), "analytic_gb": est.total_gb,
                    "ratio": float(lit["gb"]) / est.total_gb, "source": lit.get("source", "")})
    return out


def _checkpoint_note(ev: Evidence) -> str:
    w = ev.ok("weights").dropna(subset=["checkpoint_bytes", "trained_params"])
    w = w[w["checkpoint_bytes"] > 0]
    if w.empty:
        return ""
    bpp = (w["checkpoint_bytes"] / w["trained_params"]).median()
    return (f"Measured: the weight runs' checkpoints hold {bpp:.1f} bytes per parameter (median of {len(w)} runs; "
            f"fp32 weights are 4: ratio {bpp / 4:.2f})")


@check("finetune_host_ram")
def _finetune_host_ram(claim: Claim, ev: Evidence) -> list[Verdict]:
    """The host RAM of real fine-tuning runs: weight strategies that trained a real model (its weights, or its
    architecture and size with random weights; never the random toy), their peak RSS beside their device memory.
    Small-model evidence."""
    runs = [r for r in ev.report.runs if r.status == "ok" and r.training is not None and not r.toy_student
            and r.training.steps > 0]  # (a run that took no step held no training state)
    if not runs:
        return [untestable(claim, claim.need("reason"))]
    cases = []
    for r in runs:
        device = (f"device peak {r.gpu_peak_mb / 1024:,.1f} GiB" if r.gpu_peak_mb else "no device memory: trained on "
                  "the CPU, so host RAM also held what a GPU would")
        kind = "pretrained" if r.training.extra.get("pretrained") else "random-weight (a real model's shape)"
        cases.append(Case(r.peak_rss_mb * 2**20 / 1e9, f"{r.strategy} on {r.task}, a {kind} "
                          f"{r.training.total_params / 1e6:,.0f}M-parameter student, {r.training.mode}, "
                          f"{r.training.steps} steps; {device}", (r.run_id,)))
    return [_range_verdict(claim, cases, "peak RSS of the run's process tree (kernel VmHWM) while a real "
                           "model (its weights, or its shape with random weights) trained in it; small-model evidence: a model of 100M-300M parameters, not an LLM "
                           "of the sizes the study means",
                           extra="small-model evidence only: host RAM grows with the model, the data and the loader")]


@check("prompt_share")
def _prompt_share(claim: Claim, ev: Evidence) -> list[Verdict]:
    """The best prompt-only score against the best score of any strategy, fine-tuning included, on one real
    model: prompt strategies run on a real LM (local or hosted, never the offline LM, whose scores are not
    quality) and weight strategies that fine-tuned that same model as a pretrained student, on the same task
    and test set (same examples: the same task and n_test)."""
    share = float(claim.need("share"))
    ok = [r for r in ev.report.runs if r.status == "ok" and r.score_after is not None]
    known = registry.strategies()  # GEPA too: a prompt strategy the study predates
    prompt = [r for r in ok if r.strategy in known and known[r.strategy].kind == "prompt"
              and r.lm_kind in ("local", "real")]
    tuned = [r for r in ok if r.training is not None and r.training.extra.get("pretrained")]
    if not prompt:
        return [untestable(claim, claim.need("reason"))]
    cases, reasons = [], []
    for (task, n_test, model) in sorted({(r.task, r.n_test, r.lm) for r in prompt}):
        p = [r for r in prompt if (r.task, r.n_test, r.lm) == (task, n_test, model)]
        w = [r for r in tuned if (r.task, r.n_test, r.student) == (task, n_test, model)]
        if not w:
            reasons.append(f"{task} ({n_test} test examples, {model}): no ok weight run fine-tuned {model} on it")
            continue
        best_p = max(p, key=lambda r: r.score_after)
        best = max([*p, *w], key=lambda r: max(r.score_after, r.score_before or 0))
        top = max(best.score_after, best.score_before or 0)
        if top <= 0:
            reasons.append(f"{task} ({model}): no strategy scored above 0, so there is no maximum to share")
            continue
        cases.append((task, n_test, model, best_p, best, top, best_p.score_after / top, len(p), len(w)))
    if not cases:
        return [untestable(claim, "; ".join(reasons))]
    parts = []
    for task, n_test, model, bp, b, top, frac, n_p, n_w in cases:
        w = [r for r in tuned if (r.task, r.n_test, r.student) == (task, n_test, model)]
        trained = [r for r in w if r.training.steps > 0]
        parts.append(f"{task} on {model} ({n_test} test examples): best prompt-only {bp.strategy} {bp.score_after:g} "
                     f"vs best {b.strategy} {top:g}: {frac:.0%} ({n_p} prompt and {n_w} weight runs, "
                     + (f"{len(trained)} of which took training steps)" if trained else
                        "none of which took a training step: their teacher's traces gave nothing to train on)"))
    worst = min(c[6] for c in cases)
    ids = sorted({r.run_id for c in cases for r in (c[3], c[4])})
    figure = "; ".join(parts) + (". Small-model evidence: one small model on a few test examples (a test score moves "
                                 "in steps of 1/n_test), not the LLMs the study means")
    if reasons:
        figure += ". Not judged: " + "; ".join(reasons)
    return [decided(claim, worst >= share, figure, "measured",
                    rule=f"holds if on every workload the best prompt-only score is at least {share:.0%} of the best "
                         "score of any strategy (fine-tuning included; above 90% also holds: prompting got at least "
                         "that far)",
                    method="test scores (the task's metric on its test split) of ok runs on the same real model: its "
                           "prompt strategies with it as the task LM, its weight strategies fine-tuning it as a "
                           "pretrained student; the maximum is the best score seen, before or after",
                    run_ids=ids, key_runs=ids[:3],
                    data={"share": worst, "workloads": [{"task": c[0], "n_test": c[1], "model": c[2],
                                                         "best_prompt": c[3].strategy, "best": c[4].strategy,
                                                         "share": c[6]} for c in cases]})]


@check("finetune_range")
def _finetune_range(claim: Claim, ev: Evidence) -> list[Verdict]:
    measure = claim.need("measure")
    f = ev.claims.assumptions.get("finetune", {})
    cases_, speed, gpu = training_cost.cases(ev.claims, ev.memory)
    if not cases_:
        return [untestable(claim, "the claims file states no workloads or sizes to project")]
    bound = claim.need("bound")
    extra = ""
    if measure in ("gpu_memory_gb", "storage_gb"):
        seen: dict[tuple[str, str], training_cost.Case] = {}
        for c in cases_:
            seen.setdefault((c.size, c.mode), c)
        key = "memory_gb" if measure == "gpu_memory_gb" else "storage_gb"
        cases = [Case(getattr(c, key), f"{c.size} {c.mode}", (), "projected") for c in seen.values()]
        method = ("projected: the analytic memory model (harness/claims/analytic.py) under "
                  f"{training_cost.finetune_config(ev.claims).describe()}")
        if measure == "storage_gb":
            method = (f"projected: the bf16 base model ({f.get('base_model_bytes_per_param', 2)} B/param) + "
                      f"{f.get('checkpoints_kept', 3)} kept checkpoints of the training state "
                      f"({f.get('checkpoint_bytes_per_param', 14)} B per trained parameter; LoRA: the adapters)")
            extra = _checkpoint_note(ev)
        else:
            extra = _validation_note(ev)
    else:
        # judge in the claim's favour: a lower bound gets each case's dearest price, an upper bound its cheapest
        cost_key = "cost_usd_high" if bound == "lower" else "cost_usd_low"
        key = "wall_s" if measure == "time_s" else cost_key
        cases = [Case(getattr(c, key), f"{c.workload}, {c.size} {c.mode}, {c.gpus} GPU(s)", (), "projected")
                 for c in cases_]
        method = training_cost.method(ev.claims, speed, gpu)
        if measure == "cost_usd":
            method += f"; a lower-bound claim is judged at the dearer price ({cost_key})"
        if speed.basis == "measured":
            cases = [Case(c.value, c.label, c.run_ids, "measured + projected") for c in cases]
    note = f"methods {', '.join(f.get('dspy_methods', []))} (what DSPy's LocalProvider runs) at sizes " \
           f"{', '.join(f.get('sizes', []))}"
    return [_range_verdict(claim, cases, method, (extra + ". " if extra else "") + note)]


@check("model_size")
def _model_size(claim: Claim, ev: Evidence) -> list[Verdict]:
    cfg = training_cost.finetune_config(ev.claims)
    quant, limit = claim.need("quantifier"), float(claim.need("limit_gb"))
    parts, oks, data = [], [], {}
    for size in claim.need("sizes"):
        ests = {m: analytic.estimate(analytic.ARCHS[size], m, cfg) for m in claim.need("methods")}
        cheapest = min(ests, key=lambda m: ests[m].total)
        gb = ests[cheapest].total_gb
        oks.append(gb <= limit if quant == "fits" else gb > limit)
        parts.append(f"{size} ({analytic.ARCHS[size].source}): " + ", ".join(
            f"{m} {fmt(e.total_gb, 'GB')}" for m, e in ests.items()))
        data[size] = {m: e.total_gb for m, e in ests.items()}
    rule = (f"holds if, at every size, the cheapest method fits in {limit:g} GB" if quant == "fits" else
            f"holds if, at every size, even the cheapest method needs more than {limit:g} GB; contradicted if one fits")
    figure = "; ".join(parts) + ". " + _validation_note(ev)
    return [decided(claim, all(oks), figure, "projected", rule=rule,
                    method=f"projected: the analytic memory model (harness/claims/analytic.py) under {cfg.describe()}",
                    data={"limit_gb": limit, "quantifier": quant, "gb": data})]


# --------------------------------------------------------------------------- plain statements


def _gpu_used_gb(ev: Evidence, runs: pd.DataFrame) -> float | None:
    """0 on a machine without a GPU; else the largest recorded GPU peak, or None if none was recorded."""
    if not ev.machine_has_gpu:
        return 0.0
    vals = runs["gpu_peak_mb"].dropna()
    return None if vals.empty else float(vals.max()) * MIB_TO_GB


@check("prompt_size")
def _prompt_size(claim: Claim, ev: Evidence) -> list[Verdict]:
    runs = ev.ok("prompt")
    if runs.empty:
        return [untestable(claim, "no ok run of a prompt strategy in this report")]
    peak = runs.loc[runs["peak_rss_mb"].idxmax()]
    ram_high = _claim_high(ev, "prompt.ram", 32)
    gpu_high = _claim_high(ev, "prompt.gpu", 24)
    gpu_used = _gpu_used_gb(ev, runs)
    if gpu_used is None:
        return [untestable(claim, "the machine has a GPU but the runs recorded no GPU figure")]
    ok = peak["peak_rss_mb"] * MIB_TO_GB <= ram_high and gpu_used <= gpu_high
    bpp = float(ev.claims.assumption("finetune", "serving_bytes_per_param", default=2))
    hosted = ", ".join(f"{s}: {fmt(analytic.serving_bytes(analytic.ARCHS[s], bpp) / 1e9, 'GB')}"
                       for s in claim.need("sizes"))
    figure = (f"with the LM outside the optimizer's process, its peak RAM was at most {peak['peak_rss_mb']:.0f} MiB "
              f"({peak['strategy']} on {peak['task']}) and its GPU memory {gpu_used:g} GB, inside the prompt profile "
              f"({ram_high:g} GB RAM, {gpu_high:g} GB GPU) whatever the LM's size. Self-hosting the LM instead needs its "
              f"weights in memory ({bpp:g} B/param, projected): {hosted}")
    return [decided(claim, ok, figure, "measured + projected",
                    rule="holds if the optimizer's measured needs fit the study's prompt profile with a hosted LM "
                         "(the study's premise: 'mostly API calls'); self-hosting is reported, not judged",
                    method="measured peak RSS and GPU use of the prompt runs; projected serving memory = parameters x "
                           "bytes per weight (analytic, KV cache excluded)",
                    run_ids=runs["run_id"].tolist(), key_runs=[peak["run_id"]])]


def _claim_high(ev: Evidence, claim_id: str, default: float) -> float:
    c = next((c for c in ev.claims.claims if c.id == claim_id), None)
    return float(c.get("high", default)) if c else default


@check("no_training")
def _no_training(claim: Claim, ev: Evidence) -> list[Verdict]:
    runs = ev.ok("prompt")
    if runs.empty:
        return [untestable(claim, "no ok run of a prompt strategy in this report")]
    trained = runs[runs["trained"]]
    cuda = runs[runs["torch_peak_allocated_mb"].fillna(0) > 0]
    w = ev.ok("weights")
    control = (f"; the same instrument recorded {int(w['training_steps'].min())}-{int(w['training_steps'].max())} "
               f"optimizer steps in each of the {len(w)} weight-strategy runs" if not w.empty and w["trained"].all()
               else "")
    figure = (f"{len(trained)} of {len(runs)} ok prompt-strategy runs recorded a training block (optimizer steps on "
              f"weights); {len(cuda)} allocated GPU tensors{control}")
    return [decided(claim, trained.empty and cuda.empty, figure, "measured",
                    rule="holds if no prompt-strategy run trained (no training block) and none allocated GPU tensors",
                    method="the harness writes a `training` block whenever a strategy's trainer takes an optimizer step "
                           "(harness.training); GPU tensors: torch.cuda.max_memory_allocated in the run. Autograd itself "
                           "is not hooked: a gradient computed and thrown away without a step would not show",
                    run_ids=runs["run_id"].tolist(), key_runs=trained["run_id"].tolist()[:3])]


@check("inference_only")
def _inference_only(claim: Claim, ev: Evidence) -> list[Verdict]:
    runs = ev.ok("prompt")
    if runs.empty:
        return [untestable(claim, "no ok run of a prompt strategy in this report")]
    trained = runs[runs["trained"]]
    recs = [r for r in ev.report.runs if r.run_id in set(runs["run_id"])]
    calls = sum(r.lm_calls or 0 for r in recs)
    toks = sum((r.input_tokens or 0) + (r.output_tokens or 0) for r in recs)
    figure = (f"{len(runs)} ok prompt-strategy runs: {calls:,} LM completions ({toks:,} tokens), "
              f"{len(trained)} with weight training or checkpoints")
    local = [s for s in ("KNNFewShot",) if s in set(runs["strategy"])]
    if local:
        figure += "; KNNFewShot also ran a local embedding model (inference only)"
    return [decided(claim, trained.empty, figure, "measured",
                    rule="holds if the runs' only work on models was serving completions (and embeddings): no training",
                    method="LM completions counted where the LM served them; training from the records' `training` block",
                    run_ids=runs["run_id"].tolist())]


@check("laptop")
def _laptop(claim: Claim, ev: Evidence) -> list[Verdict]:
    runs = ev.ok("prompt")
    if runs.empty:
        return [untestable(claim, "no ok run of a prompt strategy in this report")]
    lap = ev.claims.assumptions.get("laptop", {})
    usable = float(lap.get("ram_gb", 8)) * float(lap.get("usable_fraction", 0.5))
    peak = runs.loc[runs["peak_rss_mb"].idxmax()]
    peak_gb = peak["peak_rss_mb"] * MIB_TO_GB
    gpu_used = _gpu_used_gb(ev, runs)
    if gpu_used is None:
        return [untestable(claim, "the machine has a GPU but the runs recorded no GPU figure")]
    m = ev.report.machine
    slow = runs.loc[runs["run_wall_s"].idxmax()]
    ok = peak_gb <= usable and gpu_used <= float(lap.get("gpu_gb", 0))
    figure = (f"peak RAM at most {peak['peak_rss_mb']:.0f} MiB = {peak_gb:.2f} GB ({peak['strategy']} on {peak['task']}) "
              f"against {usable:g} GB usable on {lap.get('description', 'a laptop')}; GPU memory used {gpu_used:g} GB; "
              f"the runs ran on {m.cpu_cores_usable} CPU core(s) of a {m.cpu_model} "
              f"{'with no GPU' if not m.gpus else 'with a GPU'}, the slowest in {slow['run_wall_s']:.1f} s")
    if ev.offline:
        figure += " (the offline LM ran inside the process: a hosted LM adds waiting, not memory)"
    return [decided(claim, ok, figure, "measured",
                    rule="holds if the largest peak RAM fits the laptop's usable RAM and no GPU memory was needed "
                         "(the laptop is an assumption in the claims file)",
                    method="measured peak RSS (VmHWM) and GPU use of every ok prompt-strategy run",
                    run_ids=runs["run_id"].tolist(), key_runs=[peak["run_id"]])]


@check("count")
def _count(claim: Claim, ev: Evidence) -> list[Verdict]:
    what, value = claim.need("count"), int(claim.need("value"))
    study = ev.claims.strategies
    ok_runs = ev.ok()
    trainers = sorted(set(ok_runs[ok_runs["trained"] & (ok_runs["training_steps"] > 0)]["strategy"]) & set(study))
    measured = set(ok_runs["strategy"]) & set(study)
    prompt_only = sorted(measured - set(trainers))
    unmeasured = sorted(set(study) - measured)
    if not measured:
        return [untestable(claim, "no ok run of any of the study's strategies in this report")]
    lo, hi = (len(prompt_only), len(prompt_only) + len(unmeasured)) if what == "prompt_only" else \
        (len(trainers), len(trainers) + len(unmeasured))
    tables = {c: sorted(n for n, s in study.items() if s.changes == c) for c in ("prompt", "weights", "both")}
    figure = (f"measured: {len(prompt_only)} strategies ran with no weight training, {len(trainers)} trained weights "
              f"({', '.join(trainers) or 'none'}), {len(unmeasured)} without an ok run "
              f"({', '.join(unmeasured) or 'none'}); so the count is {lo if lo == hi else f'{lo}-{hi}'} against the "
              f"study's {value}. The study's own tables list {len(tables['prompt'])} prompt-only, "
              f"{len(tables['weights'])} weight and {len(tables['both'])} combined ({', '.join(tables['both'])})")
    ids = ok_runs[ok_runs["strategy"].isin(trainers)]["run_id"].tolist()
    if lo <= value <= hi and lo != hi:
        return [untestable(claim, f"the count depends on strategies without an ok run ({', '.join(unmeasured)}): "
                                  f"measured {lo}-{hi}", run_ids=ok_runs["run_id"].tolist())]
    return [decided(claim, lo == hi == value, figure, "measured",
                    rule="'requires expensive GPU infrastructure' is read as 'trains model weights' (a training "
                         "block with optimizer steps); holds if the measured count equals the study's",
                    method="strategies whose ok runs recorded weight training, from the records' `training` block",
                    run_ids=ok_runs["run_id"].tolist(), key_runs=ids[:3],
                    data={"prompt_only": prompt_only, "trains_weights": trainers, "unmeasured": unmeasured})]


@check("price_invariance")
def _price_invariance(claim: Claim, ev: Evidence) -> list[Verdict]:
    df = ev.pairs("prompt")
    if df.empty or df["input_tokens"].dropna().empty:
        return [untestable(claim, "no ok prompt-strategy run with token counts in this report")]
    table, notes = projections.prices(ev.claims)
    tin, tout = float(df["input_tokens"].sum()), float(df["output_tokens"].sum())
    within = float(claim.get("same_within", 1.5))
    parts, ratios = [], []
    for small, large in claim.need("pairs"):
        if small not in table or large not in table:
            continue
        a, b = table[small].cost(tin, tout), table[large].cost(tin, tout)
        ratios.append(b / a)
        parts.append(f"${a:,.2f} at {small} vs ${b:,.2f} at {large} (x{b / a:.1f})")
    if not ratios:
        return [untestable(claim, "the price table lacks the models to compare: " + "; ".join(notes))]
    figure = (f"the same measured optimization tokens ({tin:,.0f} in, {tout:,.0f} out over {len(df)} prompt "
              f"strategy-task pairs) cost " + "; ".join(parts))
    return [decided(claim, max(ratios) <= within, figure, "projected",
                    rule=f"'the same' is within a factor {within:g}",
                    method=projections.PRICE_METHOD, run_ids=[i for ids in df["run_ids"] for i in ids],
                    data={"ratios": ratios})]
