"""What a person watching a bench sees: timestamps, elapsed time and an ETA, a bench log in OUT, and a warning
when a run's wall time is far above its CPU time."""

from __future__ import annotations

import re

from harness.bench import Bench, BenchConfig, contention_warning
from harness.load import load_report
from tests.helpers import ROOT

REFERENCE = ROOT / "results" / "standard-2core" / "report.json"


def test_a_contended_offline_run_is_named_and_a_served_or_training_one_is_not():
    report = load_report(REFERENCE)
    rec = next(r for r in report.runs if r.strategy == "MIPROv2" and r.status == "ok")
    assert contention_warning(rec) is None
    slow = rec.model_copy(update={"wall_s": rec.cpu_s * 4})
    assert re.search(r"wall time [\d.]+s is 4\.0x its CPU time .*contended", contention_warning(slow))
    assert contention_warning(slow.model_copy(update={"lm_kind": "local"})) is None  # it waits on its server
    weights = next(r for r in report.runs if r.training is not None)
    assert contention_warning(weights.model_copy(update={"wall_s": weights.cpu_s * 4})) is None


def test_each_run_line_has_a_time_elapsed_and_eta_and_the_bench_log_keeps_them(tmp_path, capsys):
    cfg = BenchConfig(out=tmp_path, profile="quick", strategies=["LabeledFewShot"], tasks=["math", "classify"],
                      options={"n_train": 8, "n_dev": 8})
    with Bench(cfg) as bench:
        for strategy, task, repeat in bench.runs:
            bench.run(strategy, task, repeat)
    err = capsys.readouterr().err
    starts = [ln for ln in err.splitlines() if re.match(r"\d\d:\d\d:\d\d \[\d/2\] LabeledFewShot on \w+ \(quick\) \.\.\.", ln)]
    assert len(starts) == 2 and "elapsed" in starts[0] and "ETA" not in starts[0]
    assert re.search(r"ETA \d+:\d\d \(1 run at this bench's mean", starts[1])
    log = (tmp_path / "logs" / "bench.log").read_text()
    assert all(line in log for line in starts) and "report: " in log


def test_harness_bench_does_the_whole_suite_and_says_done_after_its_last_step(monkeypatch, capsys, tmp_path):
    """`python -m harness bench` (what `make bench` runs) of a whole quick or standard suite: the runs, then the
    memory bench, the scaling runs and the report, and "bench done" only after the last; a bench of chosen
    strategies (or --runs-only) stops after its runs."""
    import harness.bench_pytest
    from harness import cli, scaling

    steps: list[str] = []
    monkeypatch.setattr(harness.bench_pytest, "run_pytest", lambda cfg: steps.append(f"runs {cfg.profile}") or 0)
    monkeypatch.setattr(cli, "cmd_memory", lambda a: steps.append("memory") or 0)
    monkeypatch.setattr(scaling, "main", lambda a: steps.append("scaling") or 0)
    monkeypatch.setattr(cli, "cmd_report", lambda a: steps.append("report") or 0)
    assert cli.main(["bench", "--profile", "quick", "--out", str(tmp_path)]) == 0
    assert steps == ["runs quick", "memory", "scaling", "report"]
    assert capsys.readouterr().err.rstrip().splitlines()[-1].startswith("bench done:")
    for extra in (["--strategy", "COPRO"], ["--runs-only"], ["--set", "COPRO.breadth=3"], ["--n-train", "8"]):
        steps.clear()
        assert cli.main(["bench", "--profile", "quick", "--out", str(tmp_path), *extra]) == 0
        assert steps == ["runs quick"], extra


def test_the_eta_takes_reference_runs_scaled_by_the_calibration(tmp_path):
    """A run still to come that a committed reference report (same profile and LM) holds is timed at that run's
    wall time times this machine's calibration over the reference's; a bench of other sizes uses its own mean."""
    import json

    from harness.bench import reference_walls
    from harness.record import Calibration

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "report.json").write_text(json.dumps({
        "profile": "quick", "lm": "offline/simulated", "calibration": {"seconds": 0.05},
        "runs": [{"strategy": "GEPA", "task": "math", "status": "ok", "wall_s": 10.0, "extra": {}},
                 {"strategy": "GEPA", "task": "math", "status": "ok", "wall_s": 30.0,
                  "extra": {"settings": {"auto": "heavy"}}},
                 {"strategy": "COPRO", "task": "math", "status": "failed", "wall_s": 99.0, "extra": {}}]}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "report.json").write_text("{not json")  # passed over: an ETA is never an error
    here = Calibration(workload="w", seconds=0.1, repeats=3, spread_pct=1.0)
    walls = reference_walls(tmp_path, "quick", "offline/simulated", here)
    assert walls == {("GEPA", "math"): 20.0, ("GEPA@auto=heavy", "math"): 60.0}
    assert reference_walls(tmp_path, "standard", "offline/simulated", here) == {}

    cfg = BenchConfig(out=tmp_path / "out", profile="quick", strategies=["LabeledFewShot", "BootstrapFewShot"],
                      tasks=["math"])
    with Bench(cfg) as bench:
        refs = bench.references()
        assert ("LabeledFewShot", "math") in refs  # results/baseline: the quick profile's committed reference
        eta = bench._eta(2)
    assert re.search(r"ETA \d+:\d\d \(2 runs: from reference runs scaled to this machine\)", eta), eta
    other = BenchConfig(out=tmp_path / "o", profile="quick", strategies=["LabeledFewShot"], tasks=["math"],
                        options={"n_train": 8})
    with Bench(other) as bench:
        assert bench.references() == {}
