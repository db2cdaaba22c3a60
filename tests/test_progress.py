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
