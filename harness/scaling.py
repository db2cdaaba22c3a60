"""`python -m harness scaling --profile quick|standard`: how an optimizer's LM calls and tokens grow with the
train set, at that profile's own budgets.

Each prompt strategy runs on every task (default) at the profile's budgets (``RunSpec.profile``; standard:
each optimizer's library defaults) with ``n_train`` = each of ``--sizes``, all below the profile's own
``n_train`` (default: quick 16, 24; standard 50, 100), and ``n_dev = n_train // 2``. Every run is its own
measured process (``harness.runner.run_one``), records under ``OUT/scaling/n<N>/runs/``. The bench's own
records at the profile's ``n_train`` (``OUT/runs/*.json``, else the runs in ``OUT/report.json``) are the
last point of each line, so every line has at least 3 sizes; a pair the bench did not run is run here at
that size too. ``OUT/scaling.json`` records the profile, every point (and which came from the bench), the
inputs of the optimizers' own call formulas (``harness.claims.formulas``) and the least-squares fits
(``harness.claims.projections.fit_lines``); the claims and the report project from them, labelled.

A strategy whose cost is set by its budget rather than its data gets a slope that is not significant: the
projections then say "no growth measured" and carry the largest measured value, never a smaller one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

KIND = "dspy-resource-bench/scaling"
VERSION = 2
PROFILES = ("quick", "standard")
# Sizes below each profile's own n_train (quick 32, standard 200), whose bench records are the third point.
# quick starts at 16, not 8: MIPROv2's quick mini-batch of 8 examples needs n_dev = n_train // 2 >= 8.
DEFAULT_SIZES = {"quick": (16, 24), "standard": (50, 100)}
MIN_N_TRAIN = 16


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("scaling", help="run the prompt strategies at smaller train sizes than the bench's, at the "
                                       "profile's budgets; fit calls and tokens against n_train -> OUT/scaling.json")
    p.add_argument("--out", default="results/latest", help="output folder (its bench's "
                   "records at the profile's n_train are the largest point)")
    p.add_argument("--profile", default="standard", choices=PROFILES,
                   help="whose budgets and n_train (default: standard)")
    p.add_argument("--task", default=None, help="comma list of tasks (default: all)")
    p.add_argument("--sizes", default=None, help="comma list of n_train values below the profile's n_train "
                   "(n_dev = n_train // 2); default: quick 16,24, standard 50,100")
    p.add_argument("--strategy", default=None,
                   help="comma list of strategies (default: every prompt strategy)")
    p.add_argument("--resume", action="store_true", help="reuse records already in OUT/scaling for the same size")
    return p


def profile_n_train(profile: str, tasks: list[str]) -> int:
    """The n_train the profile gives every one of `tasks` (one value: the bench's point)."""
    from harness import registry

    values = {registry.get_task(t).sizes[profile]["train"] for t in tasks}
    if len(values) != 1:
        raise HarnessError(f"profile {profile}: the tasks {tasks} have different n_train ({sorted(values)}); "
                           "run scaling per task (--task)")
    return values.pop()


def parse_sizes(text: str | None, profile: str, n_train: int) -> list[int]:
    if text is None or not text.strip():
        return list(DEFAULT_SIZES[profile])
    try:
        sizes = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise HarnessError(f"--sizes must be a comma list of integers, got {text!r}") from None
    if len(sizes) < 2:
        raise HarnessError("--sizes needs at least two distinct values (with the bench's n_train, three sizes to fit)")
    if sizes[0] < MIN_N_TRAIN:
        raise HarnessError(f"--sizes: the smallest n_train is {MIN_N_TRAIN} (MIPROv2's quick mini-batch of 8 needs "
                           "n_dev = n_train // 2 >= 8)")
    if sizes[-1] >= n_train:
        raise HarnessError(f"--sizes: {sizes[-1]} is not below the {profile} profile's n_train {n_train} (that point "
                           "comes from the bench's own records)")
    return sizes


def plan(tasks: list[str] | None, strategies: list[str] | None) -> list[tuple[str, str]]:
    """(strategy, task) pairs: the named strategies (default: every prompt strategy) on the tasks they run on."""
    from harness import registry

    known = registry.strategies()
    names = strategies or [n for n, s in known.items() if s.kind == "prompt" and not n.startswith("_")]
    task_names = tasks or [n for n in registry.tasks() if not n.startswith("_")]
    for n in names:
        registry.get_strategy(n)
    for t in task_names:
        registry.get_task(t)
    pairs = [(s, t) for t in task_names for s in names if known[s].runs_on(t)]
    if not pairs:
        raise HarnessError(f"no runs: strategies {names} do not run on tasks {task_names}")
    return pairs


def check_sizes(pairs: list[tuple[str, str]], sizes: list[int]) -> None:
    from harness import registry

    for task in {t for _, t in pairs}:
        t = registry.get_task(task)
        rows_train, rows_dev = len(t.rows("train")), len(t.rows("dev"))
        if sizes[-1] > rows_train or sizes[-1] // 2 > rows_dev:
            raise HarnessError(f"--sizes: task {task} has {rows_train} train and {rows_dev} dev rows; "
                               f"n_train={sizes[-1]} (n_dev={sizes[-1] // 2}) does not fit")


def point(rec, record: str, source: str) -> dict[str, Any]:
    """One measured point: the run's optimization cost (harness.claims.costs) at its n_train."""
    from harness.claims.costs import optimization_cost

    cost = optimization_cost(rec) if rec.status == "ok" else None
    return {"strategy": rec.strategy, "task": rec.task, "profile": rec.profile, "n_train": rec.n_train,
            "n_dev": rec.n_dev, "repeat": rec.repeat, "run_id": rec.run_id, "status": rec.status, "error": rec.error,
            "source": source, "record": record, "run_wall_s": rec.wall_s, "peak_rss_mb": rec.peak_rss_mb,
            "priced_as": rec.priced_as, "cost": cost.as_dict() if cost else None}


def bench_records(out: Path, profile: str, n_train: int, pairs: list[tuple[str, str]],
                  say=lambda m: None) -> dict[tuple[str, str], list[tuple[Any, str]]]:
    """The bench's ok records of `pairs` at the profile's n_train: OUT/runs/*.json, else OUT/report.json's runs.
    {(strategy, task): [(record, where it was read)]}."""
    from harness.load import SchemaError, load_record, load_report

    wanted = set(pairs)
    found: dict[tuple[str, str], list[tuple[Any, str]]] = {}

    def take(rec, where: str) -> None:
        if rec.profile == profile and rec.n_train == n_train and rec.n_dev == n_train // 2 and rec.status == "ok" \
                and (rec.strategy, rec.task) in wanted:
            found.setdefault((rec.strategy, rec.task), []).append((rec, where))

    for path in sorted((out / "runs").glob("*.json")) if (out / "runs").is_dir() else []:
        try:
            take(load_record(path), f"runs/{path.name}")
        except SchemaError as exc:
            say(f"warning: not a point: {exc}")
    if wanted - set(found) and (out / "report.json").exists():  # pairs OUT/runs lacks: from the report
        missing = wanted - set(found)
        for rec in load_report(out / "report.json").runs:
            if (rec.strategy, rec.task) in missing:
                take(rec, f"report.json#{rec.run_id}")
    return found


def formula_inputs(pairs: list[tuple[str, str]], profile: str) -> dict[str, Any]:
    """What the optimizers' own call formulas need, as these runs set it: budgets and predictors per task."""
    from harness.claims import formulas

    return formulas.inputs(sorted({s for s, _ in pairs}), sorted({t for _, t in pairs}), profile)


def method(profile: str, sizes: list[int], n_train: int) -> list[str]:
    from harness.claims.costs import METHOD

    return [
        f"Each prompt strategy ran at the {profile} profile's budgets (harness/strategies/prompt.py) with n_train in "
        f"{sizes} and n_dev = n_train // 2 (the first rows of each split); the bench's own records at the profile's "
        f"n_train {n_train} are the largest point (source 'bench'). The test split is the profile's at every size.",
        "Every run is its own measured process (harness.runner.run_one) with the offline LM; records under "
        "scaling/n<N>/runs/.",
        METHOD,
        "Fits (harness.claims.projections): least squares y = a + b * n_train per strategy, task and measure, with "
        "R^2, the slope's standard error, a one-sided t-test of b > 0 and its 95% interval (n - 2 degrees of freedom).",
    ]


def _measure(pairs, sizes, out: Path, profile: str, resume: bool, say) -> list[dict[str, Any]]:
    from harness.bench import summary_line
    from harness.load import SchemaError, load_record
    from harness.runner import RunSpec, run_one

    points = []
    total, done = len(pairs) * len(sizes), 0
    for size in sizes:
        folder = out / "scaling" / f"n{size}"
        for strategy, task in pairs:
            done += 1
            spec = RunSpec(strategy=strategy, task=task, profile=profile, options={"n_train": size, "n_dev": size // 2})
            path = folder / "runs" / f"{spec.run_id}.json"
            rec = None
            if resume and path.exists():
                try:
                    rec = load_record(path)
                except SchemaError:
                    rec = None
            if rec is None or rec.n_train != size or rec.profile != profile or rec.status != "ok":
                say(f"[{done}/{total}] {strategy} on {task}, {profile}, n_train={size} ...")
                rec = run_one(spec, folder)
            say(f"[{done}/{total}] {strategy} on {task}, {profile}, n_train={size}: {summary_line(rec)}")
            points.append(point(rec, str(Path("scaling") / f"n{size}" / "runs" / f"{spec.run_id}.json"), "scaling"))
    return points


def run(out: Path, pairs: list[tuple[str, str]], sizes: list[int], profile: str = "standard", resume: bool = False,
        say=lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, Any]:
    from harness.claims.projections import fit_lines
    from harness.files import OutLock, atomic_write_text
    from harness.record import utcnow

    n_train = profile_n_train(profile, sorted({t for _, t in pairs}))
    with OutLock(out / "scaling"):
        points = _measure(pairs, sizes, out, profile, resume, say)
        bench = bench_records(out, profile, n_train, pairs, say)
        missing = [p for p in pairs if p not in bench]
        if missing:
            say(f"{len(missing)} pair(s) without a bench record at n_train={n_train}: measured here")
            points += _measure(missing, [n_train], out, profile, resume, say)
        points += [point(rec, where, "bench") for recs in bench.values() for rec, where in recs]
    result = {"kind": KIND, "version": VERSION, "created_at": utcnow().isoformat(), "profile": profile,
              "sizes": sorted({*sizes, n_train}), "measured_sizes": sizes, "bench_n_train": n_train,
              "n_dev_rule": "n_train // 2", "tasks": sorted({t for _, t in pairs}),
              "method": method(profile, sizes, n_train), "formula_inputs": formula_inputs(pairs, profile),
              "runs": points, "fits": fit_lines(points)}
    atomic_write_text(out / "scaling.json", json.dumps(result, indent=1) + "\n")
    return result


def main(args: argparse.Namespace) -> int:
    from harness.files import OutLock, ensure_writable
    from harness.registry import split_names

    profile = getattr(args, "profile", None) or "standard"
    if profile not in PROFILES:
        raise HarnessError(f"--profile must be one of {', '.join(PROFILES)}, not {profile!r}")
    pairs = plan(split_names(args.task), split_names(args.strategy))
    sizes = parse_sizes(args.sizes, profile, profile_n_train(profile, sorted({t for _, t in pairs})))
    check_sizes(pairs, sizes)
    out = ensure_writable(Path(args.out))
    with OutLock(out):  # not beside a bench writing to the same folder
        result = run(out, pairs, sizes, profile=profile, resume=getattr(args, "resume", False))
    failed = [p for p in result["runs"] if p["status"] != "ok"]
    for f in result["fits"]:
        if f["measure"] == "lm_calls":
            r2 = "n/a" if f["r2"] is None else f"{f['r2']:.3f}"
            p = "n/a" if f["p_slope"] is None else f"{f['p_slope']:.3g}"
            print(f"{f['strategy']:>34} {f['task']:<9} calls = {f['a']:.1f} + {f['b']:.2f} * n_train  "
                  f"(R^2 {r2}, slope p {p}, sizes {f['sizes']})")
    print(f"wrote {out / 'scaling.json'} ({len(result['runs'])} points, {len(failed)} not ok)")
    return 0 if not failed else 1
