"""PNG plots of a report, drawn with matplotlib's Agg backend and written atomically to OUT/plots/.

Every plot has a title, axis labels with units and a legend, and says in its title whether its figures
are measured or projected. A plot whose data is missing is skipped, not drawn empty.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.claims.checks import usable_scaling
from harness.claims.costs import COST_METRICS
from harness.claims.projections import measured_floors, project
from harness.claims.spec import NOT_IN_STUDY  # a strategy with no claimed tier (GEPA): drawn grey, last
from harness.files import atomic_write_bytes
from harness.registry import budget_order

TIER_COLOURS = {"Minimal": "#1b9e77", "Low": "#377eb8", "Medium": "#ff7f00", "High": "#e41a1c",
                "Very High": "#984ea3", None: "#999999"}
LOG_SPREAD = 30.0  # a metric whose largest/smallest positive value exceeds this gets a log axis


@dataclass(frozen=True)
class Plot:
    file: str  # relative to OUT
    title: str
    what: str  # one line for report.md


def _config_dir_writable() -> bool:
    path = os.environ.get("MPLCONFIGDIR")
    if path:
        target = Path(path)
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        target = Path(base) / "matplotlib"
    try:
        target.mkdir(parents=True, exist_ok=True)
        return os.access(target, os.W_OK)
    except OSError:
        return False


def pyplot():
    """matplotlib.pyplot on the Agg backend, with a writable config folder (a temporary one if need be)."""
    if not _config_dir_writable():
        os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="harness-mpl-")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def _untiered(tier) -> bool:
    return tier is None or (isinstance(tier, float) and math.isnan(tier))


def _colour(tier) -> str:
    return TIER_COLOURS[None] if _untiered(tier) else TIER_COLOURS.get(tier, TIER_COLOURS[None])


def _tier_rank(rank) -> float:
    """A strategy's tier rank for ordering; one not in the study sorts after every tier."""
    return 99.0 if rank is None or math.isnan(float(rank)) else float(rank)


def tier_handles(ev, tiers) -> list:
    """Legend patches: the claimed tiers present, then "not in the study" if a strategy has no tier."""
    from matplotlib.patches import Patch

    present = {t for t in tiers if not _untiered(t)}
    handles = [Patch(color=TIER_COLOURS[t], label=f"claimed tier: {t}") for t in ev.claims.tiers if t in present]
    if any(_untiered(t) for t in tiers):
        handles.append(Patch(color=TIER_COLOURS[None], label=f"{NOT_IN_STUDY} (no claimed tier)"))
    return handles


def _wide(values: list[float]) -> bool:
    pos = [v for v in values if v and v > 0]
    return len(pos) >= 2 and max(pos) / min(pos) > LOG_SPREAD


# --------------------------------------------------------------------------- the plots


def resources(plt, ev, out: Path) -> Plot | None:
    """Each cost metric per strategy (median over tasks, whiskers min-max), coloured by claimed tier."""
    pairs = ev.pairs(labelled=True)  # (a budget variant has a bar of its own, under its strategy's)
    if pairs.empty:
        return None
    metrics = [*COST_METRICS, "disk_written_mb"]
    labels = {**{k: v for k, v in COST_METRICS.items()}, "disk_written_mb": ("disk written", "MiB")}
    order = sorted(pairs["strategy"].unique(),
                   key=lambda s: (_tier_rank(pairs[pairs.strategy == s]["tier_rank"].iloc[0]), budget_order(s)))
    fig, axes = plt.subplots(2, 3, figsize=(17, 10), sharey=True)
    for ax, m in zip(axes.flat, metrics):
        g = pairs.groupby("strategy")[m].agg(["median", "min", "max"]).reindex(order)
        tiers = [pairs[pairs.strategy == s]["tier"].iloc[0] for s in order]
        if g["median"].isna().all():  # e.g. spend of a local model: no price, not a zero
            name, _ = labels[m]
            ax.set_title(name[0].upper() + name[1:])
            ax.text(0.5, 0.5, "not measured here\n(no price for this LM)" if m == "spend_usd" else "not measured here",
                    ha="center", va="center", transform=ax.transAxes, fontsize=11, color="0.4")
            ax.set_xticks([])
            continue
        y = range(len(order))
        med = g["median"].astype(float).fillna(0)
        ax.barh(list(y), med, color=[_colour(t) for t in tiers])
        lo = (med - g["min"].astype(float).fillna(0)).clip(lower=0)
        hi = (g["max"].astype(float).fillna(0) - med).clip(lower=0)
        ax.errorbar(med, list(y), xerr=[lo, hi], fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
        for i, s in enumerate(order):  # a toy student's time and RAM are kept out: say so where the bar would be
            if g["median"].isna().iloc[i] and pairs[pairs.strategy == s]["toy_student"].any():
                ax.text(0, i, " toy student: not shown", va="center", fontsize=7, color="0.35")
        name, unit = labels[m]
        log = _wide(med.tolist())
        if log:
            ax.set_xscale("symlog", linthresh=max(min(v for v in med if v > 0) / 2, 1e-9))
        label = "spend at the reference price, projected" if m == "spend_usd" else name
        ax.set_xlabel(f"{label} ({unit}{', log scale' if log else ''})")
        ax.set_title(label[0].upper() + label[1:])
        ax.grid(axis="x", alpha=0.3)
    untiered = {s for s in order if _untiered(pairs[pairs.strategy == s]["tier"].iloc[0])}
    toys = {s for s in order if pairs[pairs.strategy == s]["toy_student"].any()}
    axes[0, 0].set_yticks(range(len(order)), [f"{s} ({NOT_IN_STUDY})" if s in untiered else f"{s} (toy student)"
                                              if s in toys else s for s in order])
    axes[0, 0].invert_yaxis()  # the axes share y: once inverts them all; cheapest tier on top
    for ax in axes[:, 0]:
        ax.set_ylabel("strategy (by claimed tier)")
    handles = tier_handles(ev, list(pairs["tier"]))
    fig.legend(handles=handles, loc="lower center", ncol=max(len(handles), 1), fontsize=9, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("Optimization cost per strategy, measured (bars: median over tasks; whiskers: min-max over tasks)",
                 fontsize=13)
    save(fig, out / "plots" / "resources_by_strategy.png")
    plt.close(fig)
    return Plot("plots/resources_by_strategy.png", "Optimization cost per strategy",
                "each cost (LM calls, tokens, projected spend, wall time, peak RAM, disk) per strategy, coloured by the "
                "study's tier; log axes where the spread is wide")


def _frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Pareto frontier: cheapest first, each next point scoring higher."""
    best, out = -math.inf, []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            out.append((x, y))
            best = y
    return out


def _short(name: str) -> str:
    """A strategy's or a budget variant's label, short: 'BFS', 'MIPROv2 heavy' (for 'MIPROv2@auto=heavy')."""
    return name.replace("BootstrapFewShot", "BFS").replace("Optimizer", "Opt").replace("@auto=", " ")



def _place_labels(ax, points: list[tuple[float, float, str]], fontsize: float = 6.5) -> None:
    """Label each point where its text overlaps no label placed before it (a few candidate offsets around the
    point, tried in order; points with the same position share one label, their names joined by '=')."""
    ax.figure.canvas.draw()  # the axes' scales and limits fixed, so data -> pixels is final
    to_px = ax.transData.transform
    per_char = fontsize * 0.6 * ax.figure.dpi / 72  # an average glyph's width, pixels
    height = fontsize * 1.25 * ax.figure.dpi / 72
    offsets = [(4, 2), (4, -11), (4, 13), (-4, 2), (-4, -11), (-4, 13), (4, -22), (4, 24), (-4, -22), (-4, 24)]
    placed: list[tuple[float, float, float, float]] = []
    for x, y, text in sorted(points, key=lambda p: (-p[1], p[0])):
        px, py = to_px((x, y))
        w = per_char * len(text)
        choice = offsets[0]
        for dx, dy in offsets:
            sx, sy = dx * ax.figure.dpi / 72, dy * ax.figure.dpi / 72
            box = (px + sx - (w if dx < 0 else 0), py + sy, px + sx + (0 if dx < 0 else w), py + sy + height)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                choice = (dx, dy)
                break
        sx, sy = choice[0] * ax.figure.dpi / 72, choice[1] * ax.figure.dpi / 72
        placed.append((px + sx - (w if choice[0] < 0 else 0), py + sy, px + sx + (0 if choice[0] < 0 else w),
                       py + sy + height))
        ax.annotate(text, (x, y), fontsize=fontsize, xytext=choice, textcoords="offset points",
                    ha="right" if choice[0] < 0 else "left")


def cost_quality(plt, ev, out: Path) -> Plot | None:
    runs = ev.ok_labelled()  # (a budget variant is a point of its own, joined to its strategy's others)
    runs = runs[runs["score_after"].notna() & runs["spend_usd"].notna()]
    if runs.empty:
        return None
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    tasks = sorted(runs["task"].unique())
    pos = [v for v in runs["spend_usd"] if v > 0]
    floor = min(pos) / 2 if pos else 1e-6  # a zero spend is drawn here, on the log axis
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.2 * len(tasks), 5.8), squeeze=False)
    budgets_drawn = False
    for ax, task in zip(axes[0], tasks):
        g = runs[runs.task == task]
        same: dict[tuple[float, float], list[str]] = {}
        for _, r in g.iterrows():
            x = max(r["spend_usd"], floor)
            colour = _colour(r["tier"])
            ax.scatter(x, r["score_after"], s=42, zorder=3, color=colour if not r["trained"] else "white",
                       edgecolors=colour, linewidths=1.5)
            same.setdefault((round(x, 12), round(r["score_after"], 6)), []).append(_short(r["label"]))
        for name, mine in g.groupby("strategy"):  # a strategy at several budgets: its points joined, cheapest first
            if mine["label"].nunique() > 1:
                mine = mine.assign(level=[budget_order(v) for v in mine["label"]]).sort_values("level")
                ax.plot([max(v, floor) for v in mine["spend_usd"]], mine["score_after"], ls=":", lw=1, zorder=2,
                        color=_colour(mine["tier"].iloc[0]))
                budgets_drawn = True
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))  # 1-2-5 ticks, plain dollars:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:.4g}"))  # (labelled minor ticks overprint)
        ax.xaxis.set_minor_formatter(NullFormatter())
        prompt = g[~g["trained"]]
        front = _frontier([(max(x, floor), y) for x, y in zip(prompt["spend_usd"], prompt["score_after"])])
        if front:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="black", lw=1)
        base = g["score_before"].dropna()
        if not base.empty:
            ax.axhline(base.median(), color="grey", ls="--", lw=1)
        _place_labels(ax, [(x, y, " = ".join(dict.fromkeys(names))) for (x, y), names in same.items()])
        ax.set_title(f"task: {task}")
        ax.set_xlabel("optimization spend, projected (log scale)")
        ax.set_ylabel("test score after optimizing (%)")
        ax.grid(alpha=0.3, which="both")
    handles = tier_handles(ev, list(runs["tier"]))
    handles += [Line2D([], [], marker="o", ls="", markerfacecolor="white", markeredgecolor="black",
                       label="scored with its trained student (" + ("a random toy model" if runs["toy_student"].any()
                                                                     else "a real pretrained model") + ")"),
                Line2D([], [], color="black", lw=1, label="frontier of the prompt strategies"),
                *([Line2D([], [], color="grey", ls=":", lw=1, label="one strategy at its budgets (light, medium, "
                                                                        "heavy)")] if budgets_drawn else []),
                Line2D([], [], color="grey", ls="--", lw=1, label="score before optimizing (median)")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.1))
    second = ("Offline LM: a score shows that an optimizer did its work, not how good it is on a real model"
              if ev.offline else f"Scores measured with the real LM {ev.report.lm}")
    fig.suptitle("Spend (measured tokens at the reference price: projected) against test score, per task.\n" + second,
                 fontsize=11)
    save(fig, out / "plots" / "cost_quality.png")
    plt.close(fig)
    return Plot("plots/cost_quality.png", "Spend against test score",
                "projected spend (measured tokens at the reference price) against the test score, per task, with the "
                "frontier of prompt strategies no other beats on both; weight strategies are scored with their tiny "
                f"trained student; zero spend is drawn at ${floor:.2g}")


PHASE_SHADE = {"eval_before": "#e8eef8", "compile": "#fdf0dc", "eval_after": "#e6f4ea"}


def _phase_spans(r) -> list[tuple[str, float, float]]:
    """(phase, start, end) in seconds since the run's process started: the phases run one after another, after
    the process's start-up (the wall time not in any phase, put first)."""
    phases = [p for p in r.phases if p.wall_s is not None]
    t = max(r.wall_s - sum(p.wall_s for p in phases), 0.0)
    spans = []
    for p in phases:
        spans.append((p.name, t, t + p.wall_s))
        t += p.wall_s
    return spans


def ram_timeline(plt, ev, out: Path) -> Plot | None:
    """Small multiples: one panel per strategy (its runs on each task, one colour per task), the phases
    shaded (evaluation before, compile, evaluation after), so that 15+ strategies stay legible."""
    first = min(x.repeat for x in ev.report.runs) if ev.report.runs else 0
    recs = [r for r in ev.report.runs if r.measurement.timeline and r.repeat == first]
    if not recs:
        return None
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    tasks = sorted({r.task for r in recs})
    strategies = list(dict.fromkeys(r.key[0] for r in recs))  # (a --set variant has a panel of its own)
    cmap = plt.get_cmap("tab10")
    task_colour = {t: cmap(i % 10) for i, t in enumerate(tasks)}
    ncol = min(4, len(strategies))
    nrow = -(-len(strategies) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.3 * ncol, 2.9 * nrow + 0.8), squeeze=False)
    top = max([s.rss_mb for r in recs for s in r.measurement.timeline] + [r.peak_rss_mb for r in recs])
    for ax, name in zip(axes.flat, strategies):
        mine = [r for r in recs if r.key[0] == name]
        longest = max(mine, key=lambda r: r.wall_s)
        for phase, a, b in _phase_spans(longest):  # the phases of its longest run, shaded
            if phase in PHASE_SHADE:
                ax.axvspan(a, b, color=PHASE_SHADE[phase], zorder=0)
        for r in mine:
            tl = r.measurement.timeline
            ax.plot([x.t for x in tl], [x.rss_mb for x in tl], color=task_colour[r.task], lw=1.3,
                    ls="-" if r.status == "ok" else ":", zorder=2)
            ax.scatter([tl[-1].t], [r.peak_rss_mb], color=task_colour[r.task], s=12, zorder=3, marker="^")
        claim = ev.claims.strategy(mine[0].strategy)
        tier = claim.tier if claim else NOT_IN_STUDY
        toy = " (toy student)" if any(r.toy_student for r in mine) else ""
        ax.set_title(f"{name}{toy}\n{tier}", fontsize=9)
        ax.set_ylim(0, top * 1.08)
        ax.set_xlim(0, longest.wall_s * 1.02)
        ax.grid(alpha=0.25)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(strategies):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("RSS (MiB)", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("seconds since the run started", fontsize=8)
    handles = [Line2D([], [], color=task_colour[t], lw=2, label=f"task {t}") for t in tasks]
    handles += [Patch(color=c, label=p.replace("_", " ")) for p, c in PHASE_SHADE.items()]
    handles += [Line2D([], [], marker="^", ls="", color="0.3", label="peak (the record's VmHWM)"),
                Line2D([], [], color="0.3", ls=":", label="run not ok")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle("RAM over time, one panel per strategy (the poller's samples every "
                 f"{recs[0].measurement.sample_interval_s:g} s; same RAM scale everywhere, each panel its own time "
                 "axis; phases of its longest run shaded)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    save(fig, out / "plots" / "ram_timeline.png")
    plt.close(fig)
    return Plot("plots/ram_timeline.png", "RAM over time per strategy",
                "resident memory of each run's process tree over time, one small panel per strategy with its tasks "
                "in colour and its phases shaded")


def memory_vs_analytic(plt, ev, out: Path) -> Plot | None:
    from harness.claims import memory_data

    if ev.memory is None:
        return None
    rows = memory_data.agreement(ev.memory)
    if not rows:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 5.5))
    styles = {("cpu", "full"): ("tab:blue", "o"), ("cpu", "lora"): ("tab:green", "s"),
              ("cuda", "full"): ("tab:red", "^"), ("cuda", "lora"): ("tab:purple", "D")}
    for key in sorted({(r.device, r.mode) for r in rows}):
        mine = sorted([r for r in rows if (r.device, r.mode) == key], key=lambda r: r.params)
        c, mk = styles.get(key, ("black", "x"))
        x = [r.params for r in mine]
        a1.scatter(x, [r.measured_mb for r in mine], color=c, marker=mk, zorder=3,
                   label=f"{key[0]} {key[1]}: measured ({mine[0].measure})")
        a1.plot(x, [r.analytic_mb for r in mine], color=c, lw=1.2, label=f"{key[0]} {key[1]}: analytic total")
        a1.plot(x, [r.analytic_states_mb for r in mine], color=c, lw=1, ls="--",
                label=f"{key[0]} {key[1]}: analytic weights+grads+optimizer")
        a2.plot(x, [r.ratio for r in mine], color=c, marker=mk, label=f"{key[0]} {key[1]}")
    a1.set_xscale("log")
    a1.set_yscale("log")
    a1.set_xlabel("parameters of the model (count, log scale)")
    a1.set_ylabel("peak training memory (MiB, log scale)")
    a1.set_title("Peak memory against model size")
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3, which="both")
    a2.axhline(1.0, color="black", lw=1, ls="--", label="perfect agreement")
    a2.set_xscale("log")
    a2.set_xlabel("parameters of the model (count, log scale)")
    a2.set_ylabel("measured / analytic (ratio)")
    a2.set_title("How far the analytic model is off")
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3, which="both")
    fig.suptitle("Fine-tuning memory: measured by make bench-memory (points) against the analytic model "
                 "(lines, projected)", fontsize=12)
    save(fig, out / "plots" / "memory_measured_vs_analytic.png")
    plt.close(fig)
    return Plot("plots/memory_measured_vs_analytic.png", "Fine-tuning memory, measured against analytic",
                "peak memory of each measured model size against the analytic model under the bench's own settings, and "
                "their ratio")


def finetune_projection(plt, ev, out: Path) -> Plot | None:
    from harness.claims import analytic, training_cost

    cfg = training_cost.finetune_config(ev.claims)
    sizes = list(ev.claims.assumption("finetune", "sizes", default=list(analytic.ARCHS)))
    modes = ["full", "lora", "qlora"]
    est = {(e.model, e.mode): e for e in analytic.table(sizes, modes, cfg)}
    fig, ax = plt.subplots(figsize=(11, 6))
    width = 0.27
    colours = {"full": "#e41a1c", "lora": "#377eb8", "qlora": "#4daf4a"}
    for i, m in enumerate(modes):
        xs = [j + (i - 1) * width for j in range(len(sizes))]
        vals = [est[(s, m)].total_gb for s in sizes]
        ax.bar(xs, vals, width, color=colours[m], label=f"{m} fine-tuning (analytic)")
        for x, v in zip(xs, vals):
            ax.annotate(f"{v:,.0f}" if v >= 10 else f"{v:.1f}", (x, v), ha="center", va="bottom", fontsize=7)
    for gb, ls, label in ((24, ":", "24 GB GPU"), (48, "-.", "48 GB GPU"), (80, "--", "80 GB GPU (A100/H100)")):
        ax.axhline(gb, color="black", lw=0.9, ls=ls, label=label)
    ax.axhspan(80, 800, color="grey", alpha=0.12, label="study: weight fine-tuning needs 80-800 GB")
    ax.set_yscale("log")
    ax.set_xticks(range(len(sizes)), [f"{s}\n({analytic.ARCHS[s].source})" for s in sizes], fontsize=8)
    ax.set_xlabel("model size (architecture assumed)")
    ax.set_ylabel("GPU memory for training (GB = 1e9 bytes, log scale)")
    ax.set_title(f"Fine-tuning memory by model size, projected by the analytic model\n({cfg.describe()})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3, which="both")
    save(fig, out / "plots" / "finetune_memory_projected.png")
    plt.close(fig)
    return Plot("plots/finetune_memory_projected.png", "Fine-tuning memory by model size (projected)",
                "the analytic model's total for full, LoRA and QLoRA fine-tuning at each size, against common GPU sizes "
                "and the study's 80-800 GB")


def training_cost_plot(plt, ev, out: Path) -> Plot | None:
    from harness.claims import training_cost

    cases, speed, gpu = training_cost.cases(ev.claims, ev.memory)
    if not cases:
        return None
    sizes = list(dict.fromkeys(c.size for c in cases))
    fig, ax = plt.subplots(figsize=(11, 6))
    cmap = plt.get_cmap("tab10")
    keys = list(dict.fromkeys((c.workload, c.mode) for c in cases))
    width = 0.6 / max(len(keys), 1)
    for i, (w, m) in enumerate(keys):
        mine = [c for c in cases if (c.workload, c.mode) == (w, m)]
        # each series a little to the side of the size it is at, its price range a bar, not a band: no overlap
        xs = [sizes.index(c.size) + (i - (len(keys) - 1) / 2) * width for c in mine]
        lo, hi = [c.cost_usd_low for c in mine], [c.cost_usd_high for c in mine]
        ax.vlines(xs, lo, hi, color=cmap(i % 10), lw=3, alpha=0.45)
        ax.plot(xs, lo, color=cmap(i % 10), marker="o" if m == "full" else "s", ms=5,
                ls="-" if m == "full" else "--", lw=1, label=f"{w}, {m}")
    ax.axhspan(1000, 50000, color="grey", alpha=0.15, label="study: $1,000-50,000")
    ax.set_yscale("log")
    ax.set_xticks(range(len(sizes)), sizes)
    ax.set_xlabel("model size (parameters)")
    ax.set_ylabel(f"GPU rental (USD, log scale; ${gpu.usd_per_hour[0]:.2f}-{gpu.usd_per_hour[1]:.2f}/GPU-hour)")
    ax.set_title(f"Weight-training cost of the stated workloads, projected on {gpu.name}\n"
                 f"(MFU {100 * speed.mfu:.0f}%, {speed.basis}; marker: low price, bar up to the high price)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.grid(alpha=0.3, which="both")
    save(fig, out / "plots" / "training_cost_projected.png")
    plt.close(fig)
    return Plot("plots/training_cost_projected.png", "Weight-training cost (projected)",
                "GPU rental of each stated workload by model size and method, against the study's $1,000-50,000")


def scaling_plot(plt, ev, out: Path) -> Plot | None:
    """Per task: each strategy's measured calls at each train size (ringed: the bench's own records), its
    least-squares line over the sizes measured, and the projection to the verdicts' train size (dashed: the
    fitted line; dotted: no growth measured or floored, at the value it carries)."""
    from matplotlib.lines import Line2D

    sc, _ = usable_scaling(ev)
    if sc is None or not sc.lines:
        return None
    target = max(ev.claims.assumption("scaling", "verdict_train_sizes", default=[1000]) or [1000])
    floors = measured_floors(ev.ok("prompt"))
    tasks = sc.tasks()
    strategies = list(dict.fromkeys(s for s, _ in sc.pairs()))
    cmap = plt.get_cmap("tab20")
    colour = {s: cmap(i % 20) for i, s in enumerate(strategies)}
    marks = "os^Dv<>PX*ph"
    marker = {s: marks[i % len(marks)] for i, s in enumerate(strategies)}
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 5.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for s in strategies:
            line = sc.line(s, task, "lm_calls")
            if line is None:
                continue
            xs, ys = zip(*line.points)
            bench = set(sc.bench_sizes(s, task))
            ax.scatter(xs, [max(y, 0.5) for y in ys], color=colour[s], s=24, zorder=3, marker=marker[s],
                       edgecolors=["black" if int(x) in bench else "none" for x in xs], linewidths=0.8)
            lo, hi = min(xs), max(xs)
            ax.plot([lo, hi], [max(line.fit.at(lo), 0.5), max(line.fit.at(hi), 0.5)], color=colour[s], lw=1)
            proj = project(line, target, floors.get((s, task, "lm_calls"), ()))
            if proj.value is not None:
                style = "--" if proj.rule == "fitted line" else ":"
                start = max(line.fit.at(hi), 0.5) if proj.rule == "fitted line" else max(max(ys), 0.5)
                ax.plot([hi, target], [start, max(proj.value, 0.5)], color=colour[s], lw=1, ls=style)
                ax.scatter([target], [max(proj.value, 0.5)], color=colour[s], s=30, marker=marker[s], zorder=3,
                           facecolors="none")
        ax.set_title(f"task: {task}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axvline(target, color="grey", lw=0.8, ls="-.")
        ax.set_xlabel(f"n_train (examples; n_dev = n_train // 2); projected to {target:,}")
        ax.set_ylabel("optimization LM calls (log scale; 0 drawn at 0.5)")
        ax.grid(alpha=0.3, which="both")
    handles = [Line2D([], [], color=colour[s], marker=marker[s], lw=1, label=s) for s in strategies]
    handles += [Line2D([], [], color="grey", marker="o", markeredgecolor="black", lw=0, label="bench's own record"),
                Line2D([], [], color="grey", ls="--", label="projection: fitted line"),
                Line2D([], [], color="grey", ls=":", label="projection: no growth\nmeasured, or floored")]
    fig.subplots_adjust(right=0.8, top=0.86)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.81, 0.5), fontsize=8,
               title="strategy: measured points,\nleast-squares line")
    fig.suptitle(f"LM calls against train-set size at the {sc.profile} profile's budgets: measured at "
                 f"{', '.join(map(str, sc.sizes))}, projected to {target:,} (open markers)", fontsize=12)
    save(fig, out / "plots" / "scaling_calls.png")
    plt.close(fig)
    return Plot("plots/scaling_calls.png", "LM calls against train-set size",
                f"measured optimization calls at each train size ({sc.profile} profile's budgets; ringed: the bench's "
                f"own records), the least-squares line over the sizes measured, and the projection to n_train "
                f"{target:,} that the verdicts use (dashed: fitted line; dotted: no growth measured or floored)")


PLOTS: list[Callable] = [resources, cost_quality, ram_timeline, memory_vs_analytic, finetune_projection,
                         training_cost_plot, scaling_plot]


def write_plots(ev, out: Path) -> tuple[list[Plot], list[str]]:
    """Draw every plot that has data; returns the plots written and a line per plot that failed."""
    plt = pyplot()
    written, failed = [], []
    for fn in PLOTS:
        try:
            p = fn(plt, ev, Path(out))
        except Exception as exc:  # one broken plot must not cost the report
            plt.close("all")
            failed.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
            continue
        if p is not None:
            written.append(p)
    return written, failed
