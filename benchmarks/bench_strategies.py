"""Every planned (strategy, task, repeat) as one pytest-benchmark entry, measured in its own process.

`benchmark.pedantic(..., rounds=1, iterations=1)` calls the run exactly once; the harness's own
figures (CPU, peak RSS, GPU, disk, LM calls, tokens, spend, scores) go into `extra_info`.
"""

from __future__ import annotations

import pytest

FIGURES = ("status", "wall_s", "cpu_s", "peak_rss_mb", "gpu_peak_mb", "disk_written_mb", "lm_calls", "input_tokens",
           "output_tokens", "api_cost_usd", "priced_as", "score_before", "score_after", "workaround")


def test_run(benchmark, bench, run_key):
    strategy, task, repeat = run_key
    kept = bench.kept(bench.spec(strategy, task, repeat).run_id)
    if kept is not None and kept.status != "ok":
        pytest.fail(f"{kept.run_id}: kept from an earlier run (--keep-failed): {kept.status}: {kept.error}")
    if kept is not None:
        pytest.skip("already recorded; --resume keeps it")
    benchmark.group = task
    record = benchmark.pedantic(bench.run, args=(strategy, task, repeat), rounds=1, iterations=1)
    benchmark.extra_info.update({k: getattr(record, k) for k in FIGURES})
    assert record.status == "ok", f"{record.run_id}: {record.status}: {record.error}"
