"""`python -m harness scaling`: how an optimizer's LM calls and tokens grow with the data it is given.

Each prompt strategy runs at the quick profile's budgets with ``n_train`` = each of ``--sizes`` and
``n_dev = n_train // 2``, every run in its own measured process (``harness.runner.run_one``), records
under ``OUT/scaling/n<N>/runs/``. Per strategy and task, a least-squares line ``y = a + b * n_train``
(with R^2) is fitted to the optimization cost (``harness.claims.costs``): LM calls, input tokens,
output tokens, total tokens, spend and wall time. ``OUT/scaling.json`` holds the runs and the fits; the claims and
the report extrapolate them to larger train sets, labelled as projections.

The budgets stay the quick profile's (breadth, depth, candidates, trials): only the data grows. A
strategy whose cost is set by its budget rather than its data gets a slope near 0; that is a finding.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

KIND = "dspy-resource-bench/scaling"
PROFILE = "quick"
FIT_MEASURES = ("lm_calls", "input_tokens", "output_tokens", "tokens", "spend_usd", "wall_s")
DEFAULT_SIZES = "16,32,64"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("scaling", help="run the prompt strategies at several train sizes; fit calls and tokens "
                                       "against n_train -> OUT/scaling.json")
    p.add_argument("--out", default=os.environ.get("OUT") or "results/latest", help="output folder")
    p.add_argument("--task", default=os.environ.get("TASK") or None, help="comma list of tasks (default: all)")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="comma list of n_train values (n_dev = n_train // 2); "
                                                          "at least two distinct")
    p.add_argument("--strategy", default=os.environ.get("STRATEGY") or None,
                   help="comma list of strategies (default: every prompt strategy)")
    p.add_argument("--resume", action="store_true", help="reuse records already in OUT/scaling for the same size")
    return p


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise HarnessError(f"--sizes must be a comma list of integers, got {text!r}") from None
    if len(sizes) < 2:
        raise HarnessError("--sizes needs at least two distinct values to fit a line, e.g. 16,32,64")
    if sizes[0] < 8:
        raise HarnessError("--sizes: the smallest n_train is 8 (SIMBA's quick mini-batch is 8 examples)")
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


def point(rec, out: Path, size: int) -> dict[str, Any]:
    from harness.claims.costs import optimization_cost

    cost = optimization_cost(rec) if rec.status == "ok" else None
    return {"strategy": rec.strategy, "task": rec.task, "n_train": rec.n_train, "n_dev": rec.n_dev,
            "asked_n_train": size, "run_id": rec.run_id, "status": rec.status, "error": rec.error,
            "record": str(Path("scaling") / f"n{size}" / "runs" / f"{rec.run_id}.json"),
            "wall_s": rec.wall_s, "peak_rss_mb": rec.peak_rss_mb, "priced_as": rec.priced_as,
            "cost": cost.as_dict() if cost else None}


def fit_points(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One fit per (strategy, task, measure) over the ok points with at least two distinct n_train."""
    from harness.claims.stats import linear_fit

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in points:
        if p["status"] == "ok" and p["cost"] is not None:
            groups.setdefault((p["strategy"], p["task"]), []).append(p)
    fits = []
    for (strategy, task), pts in sorted(groups.items()):
        for measure in FIT_MEASURES:
            xy = [(p["n_train"], p["cost"][measure]) for p in pts if p["cost"].get(measure) is not None]
            fit = linear_fit([x for x, _ in xy], [y for _, y in xy]) if xy else None
            if fit is None:
                continue
            fits.append({"strategy": strategy, "task": task, "measure": measure, "x": "n_train",
                         "priced_as": pts[0]["priced_as"] if measure == "spend_usd" else None, **fit.as_dict(),
                         "sizes": sorted({x for x, _ in xy})})
    return fits


def method(sizes: list[int]) -> list[str]:
    from harness.claims.costs import METHOD

    return [
        f"Each prompt strategy ran at the quick profile's budgets with n_train in {sizes} and n_dev = n_train // 2 "
        "(the first rows of each split); the test split is the quick profile's, the same at every size.",
        "Every run is its own measured process (harness.runner.run_one) with the offline LM; records under "
        "scaling/n<N>/runs/.",
        METHOD,
        "Fit: least squares y = a + b * n_train per strategy, task and measure, with R^2 (null when y is the same "
        "at every size). Extrapolating far beyond the sizes measured assumes the cost stays linear in n_train "
        "at fixed budgets: a projection, not a measurement.",
    ]


def run(out: Path, pairs: list[tuple[str, str]], sizes: list[int], resume: bool = False,
        say=lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, Any]:
    from harness.bench import summary_line
    from harness.files import OutLock, atomic_write_text
    from harness.record import SchemaError, load_record, utcnow
    from harness.runner import RunSpec, run_one

    points = []
    total, done = len(pairs) * len(sizes), 0
    with OutLock(out / "scaling"):
        for size in sizes:
            folder = out / "scaling" / f"n{size}"
            for strategy, task in pairs:
                done += 1
                spec = RunSpec(strategy=strategy, task=task, profile=PROFILE,
                               options={"n_train": size, "n_dev": size // 2})
                path = folder / "runs" / f"{spec.run_id}.json"
                rec = None
                if resume and path.exists():
                    try:
                        rec = load_record(path)
                    except SchemaError:
                        rec = None
                if rec is None or rec.n_train != size:
                    say(f"[{done}/{total}] {strategy} on {task}, n_train={size} ...")
                    rec = run_one(spec, folder)
                say(f"[{done}/{total}] {strategy} on {task}, n_train={size}: {summary_line(rec)}")
                points.append(point(rec, out, size))
    result = {"kind": KIND, "version": 1, "created_at": utcnow().isoformat(), "profile": PROFILE,
              "sizes": sizes, "n_dev_rule": "n_train // 2", "method": method(sizes), "runs": points,
              "fits": fit_points(points)}
    atomic_write_text(out / "scaling.json", json.dumps(result, indent=1) + "\n")
    return result


def main(args: argparse.Namespace) -> int:
    from harness.files import OutLock, ensure_writable
    from harness.registry import split_names

    sizes = parse_sizes(args.sizes)
    pairs = plan(split_names(args.task), split_names(args.strategy))
    check_sizes(pairs, sizes)
    out = ensure_writable(Path(args.out))
    with OutLock(out):  # not beside a bench writing to the same folder
        result = run(out, pairs, sizes, resume=getattr(args, "resume", False))
    failed = [p for p in result["runs"] if p["status"] != "ok"]
    for f in result["fits"]:
        if f["measure"] == "lm_calls":
            r2 = "n/a" if f["r2"] is None else f"{f['r2']:.3f}"
            print(f"{f['strategy']:>34} {f['task']:<9} calls = {f['a']:.1f} + {f['b']:.2f} * n_train  (R^2 {r2})")
    print(f"wrote {out / 'scaling.json'} ({len(result['runs'])} runs, {len(failed)} not ok)")
    return 0 if not failed else 1
