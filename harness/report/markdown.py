"""report.md: the verdict table first, then per-strategy figures, the projections (labelled), the plots,
and how every number was measured."""

from __future__ import annotations

import statistics
from typing import Any

import pandas as pd

from harness.claims.costs import METHOD as COST_METHOD
from harness.claims.spec import NOT_IN_STUDY
from harness.record import Report
from harness.report.tables import engine_cost, fmt_stat, strategy_frame

SCORE_NOTE = ("offline LM: a score shows that an optimizer did its work, not how good it is on a real model")


def md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(x: Any) -> str:
        return str("-" if x is None or (isinstance(x, float) and pd.isna(x)) else x).replace("|", "\\|")

    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers), *("| " + " | ".join(cell(c) for c in r) + " |"
                                                                         for r in rows)]


def money(x: float | None) -> str:
    if x is None or pd.isna(x):
        return "-"
    return f"${x:,.4f}" if x < 1 else f"${x:,.2f}" if x < 1000 else f"${x:,.0f}"


def duration(s: float | None) -> str:
    if s is None or pd.isna(s):
        return "-"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


# --------------------------------------------------------------------------- sections


def claims_section(result, error: str | None) -> list[str]:
    from harness.claims.render import (beyond_block, differences_block, provisional_block, rules_block, summary_line,
                                       verdict_table)

    lines = ["## Claims: verdicts", ""]
    if result is None:
        return lines + [f"The claims could not be judged: {error}", ""]
    lines += provisional_block(result)
    lines += [verdict_table(result), "", summary_line(result) + ". Every verdict's rule, method and numbers: "
              "claims.json.", "", "How to read the verdicts:", ""]
    lines += rules_block(result) + [""]
    return lines + differences_block(result, "## Verdicts that depend on the profile") + beyond_block(result)


def context_section(report: Report) -> list[str]:
    m = report.machine
    lines = ["## What these figures are", ""]
    lines += [f"- {n}" for n in report.notes]
    gpus = ", ".join(f"{g.name} ({g.memory_mb:,.0f} MiB)" for g in m.gpus) or (m.gpu_note or "no GPU")
    lines.append(f"- Machine `{m.machine_id}`: {m.cpu_model}, {m.cpu_cores_usable} usable of {m.cpu_cores_logical} "
                 f"logical CPUs, {m.ram_mb / 1024:,.1f} GiB RAM, GPU: {gpus}; {m.os}.")
    pk = report.software.packages
    lines.append("- Software: Python " + report.software.python + ", " +
                 ", ".join(f"{k} {v}" for k, v in pk.items() if v) + ".")
    if report.calibration:
        c = report.calibration
        lines.append(f"- Calibration: {c.workload}: {c.seconds * 1000:.1f} ms (median of {c.repeats}, spread "
                     f"{c.spread_pct:.1f}%), to compare times across machines.")
    state = "complete" if report.complete else f"INCOMPLETE: {len(report.missing_runs)} runs missing"
    hosts: dict[str, list] = {}
    for r in report.runs:
        hosts.setdefault(r.machine.machine_id, []).append(r)
    if len(hosts) > 1:  # (a bench on a Ray cluster: each run's record names its node)
        lines.append(f"- **Runs on {len(hosts)} machines** (times, RAM and disk are each machine's own; compare them "
                     "within a machine): " + "; ".join(
                         f"`{mid}` ({rs[0].machine.hostname}, {rs[0].machine.cpu_model}, "
                         f"{rs[0].machine.cpu_cores_usable} CPUs): {len(rs)} runs" for mid, rs in hosts.items()) + ".")
    nodes: dict[str, int] = {}
    for r in report.runs:
        if r.extra.get("ray_node"):
            nodes[r.extra["ray_node"]] = nodes.get(r.extra["ray_node"], 0) + 1
    if nodes:
        lines.append(f"- Ray tasks (`--executor ray`) on {len(nodes)} node{'s' if len(nodes) > 1 else ''} of the "
                     "cluster: " + ", ".join(f"`{n[:12]}` {k} runs" for n, k in nodes.items()) + ".")
    jobs = max((r.jobs for r in report.runs), default=1)
    lines.append(f"- Bench: profile {report.profile}, {len(report.runs)} runs, {state}"
                 + (f", {duration(report.bench_wall_s)} wall" if report.bench_wall_s else "") + ".")
    if jobs > 1:
        beside = max(r.ran_beside for r in report.runs)
        lines.append(f"- **A parallel bench: {jobs} runs at once** (`--jobs {jobs}`; up to {beside} other run(s) "
                     "beside one). Each run's CPU time, peak RAM and disk are counted for its own process tree "
                     "alone; its wall and CPU times are not those of a run alone (the runs shared the CPUs, which "
                     "slows each and raises the CPU it needs), so `harness check` does not gate them against a "
                     "serial bench's.")
    return lines + [""]


def failed_calls(report: Report) -> dict[tuple[str, str], str]:
    """{(strategy, task): "12 of 60"}: LM calls that failed, summed over the repeats (records since schema 3)."""
    out: dict[tuple[str, str], list[int]] = {}
    for r in report.runs:
        if r.lm_failures is not None:
            total = out.setdefault(r.key, [0, 0])
            total[0] += r.lm_failures.failed_calls
            total[1] += r.lm_failures.unserved_calls + (r.lm_calls or 0)  # attempted: served + never served
    return {k: (f"{f:,} of {n:,}" if f else "0") for k, (f, n) in out.items()}


def failure_lines(report: Report) -> list[str]:
    """One line per run whose LM failed calls or whose evaluation had errored examples."""
    hit = [r for r in report.runs if r.lm_failure_summary]
    if not hit:
        return []
    return ["", f"LM failures in {len(hit)} of {len(report.runs)} runs (failed calls by kind; an evaluation's "
            "errored examples scored 0):", ""] + [f"- `{r.run_id}` ({r.status}): {r.lm_failure_summary}" for r in hit]


def _usage(u) -> str:
    tokens = "tokens not measured" if u.input_tokens is None else f"{u.input_tokens + u.output_tokens:,} tokens"
    return f"{u.lm_calls:,} calls, {tokens}"


def budget_lines(report: Report) -> list[str]:
    """One row per run of an optimizer that budgets its own metric calls (GEPA): the budget asked and resolved,
    the metric calls it counted, and its compile calls split into reflection and the program's own."""
    runs = [r for r in report.runs if r.budget is not None]
    if not runs:
        return []
    def share(b) -> str:
        return f"{100 * b.metric_calls / b.metric_call_budget:.0f}%" if b.metric_call_budget else "-"

    rows = [[r.run_id, r.budget.asked, f"{r.budget.metric_call_budget:,}", f"{r.budget.metric_calls:,}",
             share(r.budget), r.budget.full_val_evals, r.budget.candidates, _usage(r.budget.reflection),
             _usage(r.budget.task)] for r in runs]
    return ["", "Metric-call budgets (GEPA counts its own metric calls, program runs on one example, and checks its "
            "budget between iterations, so it can end one iteration past it). Compile calls split: "
            + runs[0].budget.split_method + ".", "",
            *md_table(["run", "budget asked", "budget (metric calls)", "metric calls used", "of budget",
                       "full valset evaluations", "candidates", "reflection LM", "program (task LM)"], rows)]


def server_lines(report: Report) -> list[str]:
    """One row per run on an LM server the harness started: the server's memory (apart from the run's), its time
    per call and speeds, what it answered, and what the harness had to work around."""
    runs = [r for r in report.runs if r.lm_server is not None]
    if not runs:
        return []
    first = runs[0].lm_server
    what = f"{first.server}" + (f" {first.version}" if first.version else "") + (
        f", {first.model_file}" if first.model_file else "")
    settings = ", ".join(f"{k} {v}" for k, v in first.settings.items())

    def speed(x):
        return "-" if x is None else f"{x:,.0f}"

    rows = []
    for r in runs:
        s = r.lm_server
        fb = r.lm_failures.adapter_fallbacks if r.lm_failures is not None else None
        rows.append([r.run_id, f"{s.calls:,}", f"{s.requests:,}", "-" if s.call_s_mean is None else f"{s.call_s_mean:.2f}",
                     "-" if s.call_s_p95 is None else f"{s.call_s_p95:.2f}", speed(s.prompt_tokens_per_s),
                     speed(s.generation_tokens_per_s), "-" if s.peak_rss_mb is None else f"{s.peak_rss_mb:,.0f}",
                     f"{r.peak_rss_mb:,.0f}", "-" if fb is None else f"{fb:,}", f"{s.n_shortfalls:,}", f"{s.errors:,}"])
    return ["", f"The LM server ({what}; {settings}; ready in {duration(first.startup_s)}), measured during each run: "
            "requests and usage at the harness's proxy, RSS of the server's process tree sampled every 0.5 s (the "
            "LM's memory, apart from the optimizer's peak RSS), speeds from the server's own timing log. Fallbacks: "
            "answers ChatAdapter could not parse, asked again through JSONAdapter (each one more call). n short: "
            "requests for n > 1 completions answered with fewer, completed by the proxy with one request each.", "",
            *md_table(["run", "calls", "requests", "s per call", "p95 s", "prompt tok/s", "gen tok/s",
                       "server peak RSS MiB", "run peak RSS MiB", "fallbacks", "n short", "errors"], rows)]


def cost_card_section(report: Report) -> list[str]:
    """What the reader asks first: per task, what each optimizer cost and what it bought."""
    from harness.registry import strategies

    lines = ["## What each optimizer cost", ""]
    frame = strategy_frame(report)
    if frame.empty:
        return lines + ["No runs.", ""]
    declared = strategies()
    offline = report.lm.startswith("offline")
    price = (f"spend at {report.priced_as}'s price" + (" (projected: the offline LM is not billed)" if offline else "")
             if report.priced_as else "spend not priced")
    lines += [f"Per task, whole runs (median over ok repeats), LM {report.lm}; {price}; wall time and peak RAM of "
              "the optimizer's process tree on this machine. Scores: " + (SCORE_NOTE if offline else
                                                                         f"measured with {report.lm}") + ".", ""]
    for task, rows in frame.groupby("task", sort=False):
        lines += [f"**{task}**", ""]
        table = []
        for _, row in rows.iterrows():
            def med(name, digits=",.0f"):
                st = row.get(name)
                return "-" if st is None or (isinstance(st, float) and pd.isna(st)) else format(st.median, digits)

            tokens = "-"
            if med("input_tokens") != "-" and med("output_tokens") != "-":
                tokens = f"{row['input_tokens'].median + row['output_tokens'].median:,.0f}"
            spend = row.get("api_cost_usd")
            pair = [r for r in report.runs if r.key == (row["strategy"], task) and r.status == "ok"]
            before = [r.score_before for r in pair if r.score_before is not None]
            after = [r.score_after for r in pair if r.score_after is not None]
            score = f"{statistics.median(before):.0f} -> {statistics.median(after):.0f}" if before and after else "-"
            strat = declared.get(row["strategy"].split("@")[0])  # a --set variant: its strategy's
            status = "ok" if row["ok"] == row["runs"] else row["status"]
            students = sorted({r.student for r in pair if r.student})
            shaped = any(r.training is not None and r.training.extra.get("init") == "config" for r in pair)
            name = row["strategy"] + (" (toy student)" if any(r.toy_student for r in pair) else
                                      f" (student {', '.join(students)}" + (", random weights: its score is not that "
                                                                            "model's)" if shaped else ")")
                                      if students else "")
            calls = med("lm_calls")
            prompt = [r.extra["prompt_lm"]["lm_calls"] for r in pair if (r.extra.get("prompt_lm") or {}).get("lm_calls")]
            if prompt and calls != "-":  # --prompt-lm: its share of the calls apart
                calls += f" ({statistics.median(prompt):,.0f} by the prompt LM)"
            table.append([name, status, calls, tokens,
                          money(spend.median) if spend is not None and not pd.isna(spend) else "-",
                          duration(row["wall_s"].median) if row.get("wall_s") is not None
                          and not pd.isna(row.get("wall_s")) else "-",
                          f"{med('peak_rss_mb')} MiB" if med("peak_rss_mb") != "-" else "-", score,
                          strat.scales_with if strat is not None and strat.scales_with else "-"])
        lines += md_table(["strategy", "status", "LM calls", "tokens", "spend", "wall", "peak RAM", "score",
                           "calls scale with"], table) + [""]
    prompt_lms = sorted({f"{r.extra['prompt_lm']['model']}" + (f" (priced as {r.extra['prompt_lm']['priced_as']})"
                                                                   if r.extra["prompt_lm"].get("priced_as") else "")
                         for r in report.runs if r.extra.get("prompt_lm")})
    if prompt_lms:
        lines += [f"Prompt LM (`--prompt-lm`): {', '.join(prompt_lms)}, given to each optimizer that takes one "
                  "(prompt_model, reflection_lm); its calls are counted in the run's and shown apart, its tokens are "
                  "priced at its own price in the spend.", ""]
    lines += by_machine_lines(report)
    if any(r.toy_student for r in report.runs):
        lines += ["A toy student is a random-initialised model of a few hundred thousand parameters, there so that a "
                  "fast profile exercises the weight strategies: its LM calls and tokens are the teacher's and real, "
                  "its wall time, RAM and score are a toy's, and the verdicts leave its time and RAM out. A real "
                  "pretrained student: `--student local/smollm2-135m`, or `make bench PROFILE=real-student`.", ""]
    return lines


def by_machine_lines(report: Report) -> list[str]:
    """Where the runs ran on more than one machine (a bench on a Ray cluster): the machine-dependent figures (wall,
    CPU time, peak RAM) of each strategy and task, one column per machine, medians over that machine's ok runs; the
    cost card's medians above mix machines."""
    hosts: dict[str, str] = {}
    for r in report.runs:
        hosts.setdefault(r.machine.machine_id, f"`{r.machine.machine_id}` ({r.machine.hostname})")
    if len(hosts) < 2:
        return []
    cells: dict[tuple[str, str], dict[str, list]] = {}
    for r in report.runs:
        if r.status == "ok":
            cells.setdefault((r.key[0], r.task), {}).setdefault(r.machine.machine_id, []).append(r)

    def figures(runs: list) -> str:
        if not runs:
            return "-"
        med = statistics.median
        return (f"{duration(med(r.wall_s for r in runs))}, {med(r.cpu_s for r in runs):,.1f} s CPU, "
                f"{med(r.peak_rss_mb for r in runs):,.0f} MiB ({len(runs)})")

    rows = [[strategy, task, *(figures(by.get(mid, [])) for mid in hosts)] for (strategy, task), by in cells.items()]
    return [f"**Times and RAM by machine** ({len(hosts)} machines: wall, CPU time and peak RAM are each machine's "
            "own, so here they stand apart; median over its ok runs, their number in brackets)", ""] + \
        md_table(["strategy", "task", *hosts.values()], rows) + [""]


def strategy_section(report: Report, ev) -> list[str]:
    offline = report.lm.startswith("offline")
    note = SCORE_NOTE if offline else (f"scored with the real LM {report.lm}" + (
        " (a small local model: a weak measure of quality)" if report.lm.startswith("local/") else ""))
    spend = (f"Spend is the run's tokens at the reference price ({report.priced_as}): projected, not paid" if offline
             else f"Spend is the run's tokens at {report.priced_as}'s price" if report.priced_as
             else f"Spend is not priced: DSPy's price table has no entry for {report.lm} (name one with --price-as)")
    lines = ["## Per strategy", "",
             "Whole-run figures, median over repeats (with the spread (max - min) / median and the count when a "
             f"strategy ran several repeats; `harness.aggregate`). {spend}. Scores: {note}.", ""]
    frame = strategy_frame(report)
    if frame.empty:
        return lines + ["No runs.", ""]
    tiers = {n: s.tier for n, s in ev.claims.strategies.items()} if ev is not None else {}
    untiered = NOT_IN_STUDY if ev is not None else "-"  # with no claims judged, no tier is known for any strategy
    scores_before = {}
    for r in report.runs:
        if r.status == "ok" and r.score_before is not None:
            scores_before.setdefault(r.key, []).append(r.score_before)
    failures = failed_calls(report)
    rows = []
    for _, r in frame.iterrows():
        key = (r["strategy"], r["task"])
        before = scores_before.get(key)
        after = r.get("score_after")
        score = "-"
        if before and after is not None and not pd.isna(after):
            score = f"{statistics.median(before):.1f} -> {fmt_stat(after, 3)}"
        tokens = None
        if r.get("input_tokens") is not None and not pd.isna(r.get("input_tokens")):
            tokens = f"{r['input_tokens'].median + r['output_tokens'].median:,.0f}"
        rows.append([r["strategy"], tiers.get(r["strategy"], untiered), r["task"], r["status"],
                     fmt_stat(r.get("lm_calls")), tokens or "not measured", fmt_stat(r.get("api_cost_usd"), money=True),
                     failures.get(key, "-"),
                     fmt_stat(r.get("wall_s")), fmt_stat(r.get("cpu_s")), fmt_stat(r.get("peak_rss_mb")),
                     fmt_stat(r.get("disk_written_mb")), fmt_stat(r.get("gpu_peak_mb")), score])
    lines += md_table(["strategy", "claimed tier", "task", "runs", "LM calls", "tokens", "spend (projected)",
                       "failed LM calls", "wall s", "CPU s", "peak RAM MiB", "disk MiB", "GPU MiB",
                       f"test score % before -> after ({note})"], rows)
    lines += failure_lines(report)
    lines += server_lines(report)
    lines += budget_lines(report)
    if ev is not None:
        pairs = ev.pairs()
        if not pairs.empty:
            lines += ["", "Optimization cost (what the claims judge): " + COST_METHOD, ""]
            lines += md_table(["strategy", "task", "LM calls", "tokens", "spend (projected)", "optimization wall s",
                               "peak RAM MiB",
                               "repeats"],
                              [[p["strategy"], p["task"], f"{p['lm_calls']:,.0f}",
                                "not measured" if pd.isna(p["tokens"]) else f"{p['tokens']:,.0f}",
                                money(p["spend_usd"]), f"{p['optimize_wall_s']:.2f}", f"{p['peak_rss_mb']:.0f}", p["repeats"]]
                               for _, p in pairs.iterrows()])
    return lines + [""]


def projections_section(result) -> list[str]:
    if result is None or not result.projections:
        return []
    p = result.projections
    lines = ["## Projections", "",
             "Every figure in this section is projected, not measured: the method of each table says from what.", ""]
    models = list(p["prices"]["models"])
    price_rows = [[m, f"${v['input_usd_per_mtok']:.2f}", f"${v['output_usd_per_mtok']:.2f}",
                   *(lambda l: [l.get("ttft_s"), l.get("output_tokens_per_s")])(p["latency"]["models"].get(m, {}))]
                  for m, v in p["prices"]["models"].items()]
    lines += ["### Prices and latency assumed", "",
              f"Prices: {next(iter(p['prices']['models'].values()))['source'] if models else 'none'}. "
              f"Latency: {p['latency']['source']}. " + " ".join(n for n in p["prices"]["notes"] if n), ""]
    lines += md_table(["model", "input per 1M tokens", "output per 1M tokens", "time to first token (s, assumed)",
                       "output tokens/s (assumed)"], price_rows) + [""]
    conc = p["latency"]["concurrency"]
    if p.get("prompt_runs", {}).get("rows"):
        df = pd.DataFrame(p["prompt_runs"]["rows"])
        lines += ["### The measured prompt optimizations at hosted prices and speeds", "",
                  "Method: " + p["prompt_runs"]["method"] + ". Sum over the tasks each strategy ran on.", ""]
        spend = df.pivot_table(index="strategy", columns="model", values="spend_usd", aggfunc="sum", sort=False)
        t = {c: df.pivot_table(index="strategy", columns="model", values=f"api_time_s_c{c}", aggfunc="sum",
                               sort=False) for c in conc}
        ref = models[0] if models else None
        headers = ["strategy", *[f"spend at {m}" for m in models],
                   *[f"API time at {ref}, {c} concurrent" for c in conc]]
        rows = [[s, *[money(spend.loc[s, m]) if m in spend.columns else "-" for m in models],
                 *[duration(t[c].loc[s, ref]) if ref in t[c].columns else "-" for c in conc]] for s in spend.index]
        lines += md_table(headers, rows) + [""]
    lines += scaling_lines(p.get("scaling"), models, conc)
    tr = p.get("training")
    if tr:
        lines += ["### Weight training: GPUs, time, money and storage", "", "Method: " + tr["method"] + ".", "",
                  "Workloads (assumed): " + "; ".join(f"{w['name']} ({w.get('why', '')})" for w in tr["workloads"]) + ".",
                  ""]
        rows = [[c["workload"], c["size"], c["mode"], f"{c['memory_gb']:,.1f}", c["gpus"], f"{c['train_tokens']:,.0f}",
                 f"{c['gpu_hours']:,.1f}", duration(c["wall_s"]),
                 f"{money(c['cost_usd_low'])}-{money(c['cost_usd_high'])}", f"{c['storage_gb']:,.0f}"]
                for c in tr["rows"]]
        lines += md_table(["workload", "size", "method", "memory GB", "GPUs", "trained tokens", "GPU-hours", "wall time",
                           "cost", "storage GB"], rows) + [""]
    am = p.get("analytic_memory")
    if am:
        lines += ["### Fine-tuning memory, analytic", "", f"Configuration: {am['config']}. GB = 10^9 bytes.", "",
                  "Assumptions:", ""] + [f"- {a}" for a in am["assumptions"]] + [""]
        rows = [[e["model"], e["mode"], f"{e['params'] / 1e9:,.2f}B", f"{e['trainable'] / 1e6:,.1f}M",
                 *[f"{e[k] / 1e9:,.1f}" for k in ("weights", "master", "grads", "optimizer")],
                 f"{(e['activations'] or 0) / 1e9:,.2f}", f"{(e['logits'] or 0) / 1e9:,.2f}", f"{e['total_gb']:,.1f}"]
                for e in am["rows"]]
        lines += md_table(["size", "method", "parameters", "trained", "weights GB", "fp32 master GB", "gradients GB",
                           "optimizer GB", "activations GB", "logits GB", "total GB"], rows) + [""]
    lines += agreement_lines(p)
    return lines


def _num(x: float | None, digits: str = ",.0f") -> str:
    return "-" if x is None or pd.isna(x) else format(x, digits)


def scaling_lines(sc: dict | None, models: list[str], conc: list[int]) -> list[str]:
    """"At larger train sets": the fits with their quality, projections per task with their rule, a sum that
    names its tasks, and the optimizers' own formulas beside the fits and the measurements."""
    lines = ["### At larger train sets", ""]
    if not sc or sc.get("label") != "projected":
        return lines + [f"Not projected: {(sc or {}).get('reason', 'no scaling.json beside the report')}.", ""]
    tasks = ", ".join(sc["tasks"])
    lines += [f"Method: {sc['method']}. Fitted at the **{sc['profile']} profile's budgets** on n_train = "
              f"{', '.join(map(str, sc['fit_sizes']))} per task ({tasks}; {sc['file']}). {sc['few_points']}.", ""]
    if sc.get("refused"):
        lines += ["Not projected (fewer than 3 sizes): " + "; ".join(sc["refused"]) + ".", ""]
    meas = pd.DataFrame(sc.get("measured") or [])
    fits = [f for f in sc["fits"] if f["measure"] == "lm_calls"]
    if fits:
        lines += ["Fits of the LM calls, per strategy and task (measured: the median at each size; 'bench' marks the "
                  "bench's own records):", ""]
        rows = []
        for f in fits:
            m = meas[(meas.strategy == f["strategy"]) & (meas.task == f["task"])] if not meas.empty else meas
            pts = "; ".join(f"{int(r.n_train)}: {r.lm_calls:,.0f}" + (" (bench)" if "bench" in r.source else "")
                            for r in m.itertuples()) if not m.empty else "-"
            ci = f"{f['ci_b'][0]:+,.3g} to {f['ci_b'][1]:+,.3g}" if f.get("ci_b") else "-"
            rows.append([f["strategy"], f["task"], pts, f"{f['b']:+,.3g}", ci, _num(f["r2"], ".3f"),
                         _num(f["p_slope"], ".2g"), f["growth"]])
        lines += md_table(["strategy", "task", "measured calls by n_train", "slope (calls/example)", "95% CI of slope",
                           "R^2", "p (slope > 0)", "finding"], rows) + [""]
    df = pd.DataFrame(sc["rows"])
    if df.empty:
        return lines
    ref, dear = models[0], models[-1]
    lines += [f"Projected per task (tokens, spend and API time from the projected tokens and calls; spend at {ref} "
              f"and {dear}; API time at {ref}, {conc[0]} concurrent):", ""]
    rows = []
    for (s, t, n), g in df.groupby(["strategy", "task", "n_train"], sort=False):
        r_ref, r_dear = g[g.model == ref].iloc[0], g[g.model == dear].iloc[0]
        rule = r_ref["calls_rule"] if r_ref["tokens_rule"] == r_ref["calls_rule"] else \
            f"calls: {r_ref['calls_rule']}; tokens: {r_ref['tokens_rule']}"
        rows.append([s, t, f"{n:,}", f"{r_ref['lm_calls']:,.0f}", rule,
                     f"{r_ref['input_tokens'] + r_ref['output_tokens']:,.0f}", money(r_ref["spend_usd"]),
                     money(r_dear["spend_usd"]), duration(r_ref[f"api_time_s_c{conc[0]}"])])
    lines += md_table(["strategy", "task", "n_train", "LM calls", "rule (calls; tokens where it differs)", "tokens",
                       f"spend at {ref}",
                       f"spend at {dear}", f"API time at {ref}"], rows) + [""]
    lines += ["Summed over the tasks each strategy ran on (the tasks named), projected and, for comparison, measured "
              "at the largest size (the bench's own records when scaling.json holds them):", ""]
    rows = []
    for (s, n), g in df.groupby(["strategy", "n_train"], sort=False):
        r_ref, r_dear = g[g.model == ref], g[g.model == dear]
        names = ", ".join(r_ref["task"])
        m = meas[meas.strategy == s] if not meas.empty else meas
        m = m[m.n_train == m.n_train.max()] if not m.empty else m
        at = (f"{m['lm_calls'].sum():,.0f} calls, {money(m['spend_usd'].sum())} at n_train {int(m['n_train'].max())} "
              f"({', '.join(sorted(set(m['source'])))})") if not m.empty else "-"
        rows.append([s, f"sum over {names}", f"{n:,}", f"{r_ref['lm_calls'].sum():,.0f}", money(r_ref["spend_usd"].sum()),
                     money(r_dear["spend_usd"].sum()), ", ".join(sorted(set(r_ref["calls_rule"]))), at])
    lines += md_table(["strategy", "tasks", "n_train", "LM calls", f"spend at {ref}", f"spend at {dear}", "rules",
                       "measured at the largest size (spend at the record's price)"], rows) + [""]
    return lines + formula_lines(sc)


def formula_lines(sc: dict) -> list[str]:
    """The table "formula vs fit vs measured" for the strategies whose own call count is known."""
    rows = sc.get("formulas") or []
    lines = ["#### The optimizers' own formulas vs the fit vs the measurement", ""]
    if not rows:
        return lines + ["No strategy with a known formula (MIPROv2, COPRO, SignatureOptimizer) in scaling.json.", ""]
    sources = sorted({r["formula_source"] for r in rows if r["formula_source"]})
    lines += ["LM calls at each size measured and each size projected. Formulas: " + "; ".join(sources) + "."]
    for name, note in (sc.get("formula_future") or {}).items():
        lines[-1] += f" {name}: {note}."
    lines += [""]
    lines += md_table(["strategy", "task", "n_train", "measured", "formula", "fitted line", "projected (rule)",
                       "formula terms"],
                      [[r["strategy"], r["task"], f"{r['n_train']:,}", _num(r["measured"]), _num(r["formula"]),
                        _num(r["line"]), "-" if r["projected"] is None else f"{r['projected']:,.0f} ({r['rule']})",
                        r["formula_detail"] or "-"] for r in rows]) + [""]
    return lines


def agreement_lines(p: dict) -> list[str]:
    lines = ["### The analytic model against measurements", ""]
    ma = p.get("memory_agreement")
    if ma:
        lines += [f"From {ma['file']} (make bench-memory): slopes of peak memory against parameters.", ""]
        lines += md_table(["device", "mode", "sizes", "measured B/param", "analytic B/param (same sizes, with "
                           "activations)", "measured / analytic", "analytic weights+grads+optimizer B/param"],
                          [[s["device"], s["mode"], ", ".join(s["sizes"]),
                            f"{s['measured_bytes_per_param']:.2f}" if s["measured_bytes_per_param"] else "-",
                            f"{s['analytic_bytes_per_param']:.2f}" if s["analytic_bytes_per_param"] else "-",
                            f"{s['ratio']:.2f}" if s["ratio"] else "-", f"{s['analytic_states_bytes_per_param']:g}"]
                           for s in ma["slopes"]]) + [""]
        lines += md_table(["size", "device", "mode", "measure", "measured MiB", "analytic MiB", "measured / analytic"],
                          [[e["size"], e["device"], e["mode"], e["measure"], f"{e['measured_mb']:,.0f}",
                            f"{e['analytic_mb']:,.0f}", f"{e['ratio']:.2f}"] for e in ma["entries"]]) + [""]
    else:
        lines += ["Not measured here: no finetune_memory.json beside the report (`make bench-memory OUT=...`).", ""]
    lit = p.get("literature", {}).get("rows")
    if lit:
        lines += md_table(["published figure", "published GB", "analytic GB", "published / analytic", "source"],
                          [[r["name"], f"{r['published_gb']:g}", f"{r['analytic_gb']:,.1f}", f"{r['ratio']:.2f}",
                            r["source"]] for r in lit]) + [""]
    return lines


def plots_section(plots, failed: list[str]) -> list[str]:
    lines = ["## Plots", ""]
    for p in plots:
        lines += [f"### {p.title}", "", p.what + ".", "", f"![{p.title}]({p.file})", ""]
    if failed:
        lines += ["Plots that could not be drawn: " + "; ".join(failed), ""]
    return lines


def methods_section(report: Report) -> list[str]:
    lines = ["## How each number was measured", ""]
    fields = [("peak RAM", "peak_rss_method"), ("CPU time", "cpu_method"), ("disk written", "disk_method"),
              ("GPU", "gpu_method")]
    ok = [r for r in report.runs if r.status == "ok"] or report.runs
    for label, name in fields:
        methods = sorted({getattr(r.measurement, name) for r in ok} - {None})
        for m in methods:
            lines.append(f"- **{label}**: {m}.")
    if ok:
        interval = sorted({r.measurement.sample_interval_s for r in ok})
        over = [r.measurement.sampler_overhead_pct for r in ok if r.measurement.sampler_overhead_pct is not None]
        lines.append(f"- **RAM timeline**: the poller sampled the process tree every {', '.join(f'{i:g}' for i in interval)} "
                     f"s (a lower bound on the peak; plots only)" + (f"; its own CPU cost was a median {statistics.median(over):.2f}% "
                                                                     "of the run's" if over else "") + ".")
    eng = engine_cost([r for r in report.runs if r.status == "ok"])
    if eng:
        lines.append(f"- **The offline LM's own cost**: {eng['engine_ms_per_call']:.3f} ms of CPU per call against DSPy's "
                     f"{eng['dspy_ms_per_call']:.3f} ms of per-call overhead ({eng['engine_share_pct']:.1f}% of it; "
                     f"evaluation phases, {eng['calls']:,} calls; per run in runs.csv): the times measured are "
                     "DSPy's, not the stand-in's.")
    lines += ["- **LM calls and tokens**: counted where the LM served each call (every thread), with the tokenizer of "
              "the price model.",
              f"- **Optimization cost** (the claims' figures): {COST_METHOD}",
              "- **Wall time**: time.perf_counter around the run's child process; per phase inside it.", ""]
    work = sorted({r.workaround for r in report.runs if r.workaround})
    if work:
        lines += ["Workarounds for DSPy defects:", ""] + [f"- {w}" for w in work] + [""]
    bad = [r for r in report.runs if r.status != "ok"]
    if bad:
        lines += ["Runs that did not finish ok:", ""]
        lines += md_table(["run", "status", "reason"], [[r.run_id, r.status, (r.error or "")[:300]] for r in bad])
        lines.append("")
    return lines


def build(report: Report, result, ev, plots, failed_plots: list[str], claims_error: str | None = None) -> str:
    lines = [f"# dspy-resource-bench report: profile {report.profile}, LM {report.lm}", ""]
    lines += cost_card_section(report)
    lines += claims_section(result, claims_error)
    lines += context_section(report)
    lines += strategy_section(report, ev)
    lines += projections_section(result)
    lines += plots_section(plots, failed_plots)
    lines += methods_section(report)
    return "\n".join(lines).rstrip() + "\n"
