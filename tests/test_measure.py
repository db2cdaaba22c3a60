"""Measurement of one run: the kernel's high-water mark vs the poller, trees, limits, GPU nulls."""

from __future__ import annotations

import time

import pytest

from harness.machine import nvidia_gpus
from harness.runner import RunSpec, run_one
from tests.helpers import use_plugin

use_plugin()


def run(strategy: str, tmp_path, **kw):
    options = kw.pop("options", {})
    spec = RunSpec(strategy=strategy, task="_toy", profile="quick", score=False, options=options, **kw)
    return run_one(spec, tmp_path)


def test_short_burst_is_caught_by_the_high_water_mark_within_5_percent(tmp_path):
    rec = run("_burst", tmp_path, options={"mb": 300})
    assert rec.status == "ok", rec.error
    before = rec.extra["rss_before_mb"]
    by_hwm = rec.peak_rss_mb - before
    assert abs(by_hwm - 300) <= 0.05 * 300, (by_hwm, rec.measurement)
    # The poller only sees what exists at its ticks: never more than the kernel's mark, and it is
    # the method that can miss the burst (kept for the timeline, not for peaks).
    by_poller = rec.measurement.sampled_peak_rss_mb - before
    assert by_poller <= by_hwm + 1.0
    assert abs(300 - by_poller) >= abs(300 - by_hwm) - 1.0
    assert "VmHWM" in rec.measurement.peak_rss_method


def test_a_10hz_poller_misses_the_peak_of_a_burst_the_kernel_sees():
    """memory-profiler (a psutil poller, as many tools use) against the kernel's mark on a short burst.

    The whole block exists only between the end of its filling and its release (microseconds), so a
    10 Hz poller sees at most part of it. On a loaded machine the child can be descheduled inside that
    window and caught there: up to three tries, and one miss shows the weakness."""
    import subprocess
    import sys

    from memory_profiler import memory_usage

    code = ("import time, resource; time.sleep(0.35); b = b'\\x01' * (300 * 2**20); del b; time.sleep(0.35);"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    seen = []
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        samples = memory_usage(proc, interval=0.1, include_children=True)
        hwm = float(proc.communicate()[0])
        assert hwm >= 300  # the kernel saw the whole block every time
        seen.append((max(samples), hwm))
        if max(samples) < 0.97 * hwm:
            return
    raise AssertionError(f"the poller caught the full peak every time: {seen}")


def test_two_process_tree_is_measured_as_a_tree(tmp_path):
    rec = run("_tree", tmp_path)
    assert rec.status == "ok", rec.error
    assert rec.measurement.processes_seen >= 2
    # 100 MB held by the run's process and 200 MB by its child at the same time
    assert rec.measurement.hwm_tree_sum_mb >= (rec.setup_rss_mb or 0) + 300 - 15
    assert rec.peak_rss_mb == pytest.approx(rec.measurement.hwm_tree_sum_mb)
    assert "descendant" in rec.measurement.peak_rss_method
    assert rec.cpu_s >= rec.phase("setup").cpu_s + 0.55  # the child's busy loop counts


def test_hanging_run_ends_as_timeout_within_limit_plus_5s(tmp_path):
    t0 = time.perf_counter()
    rec = run("_hang", tmp_path, timeout_s=6)
    assert time.perf_counter() - t0 <= 6 + 5
    assert rec.status == "timeout"
    assert "time limit of 6s exceeded" in rec.error and "compile" in rec.error
    assert rec.wall_s >= 6 and rec.peak_rss_mb > 0 and rec.cpu_s > 0


def test_raising_strategy_gives_a_failed_record_with_one_line(tmp_path):
    rec = run("_raise", tmp_path)
    assert rec.status == "failed"
    assert rec.error.startswith("ValueError: boom from a test strategy")
    assert "\n" not in rec.error
    assert [p.name for p in rec.phases] == ["setup"]  # what ran before the failure is kept
    assert (tmp_path / "runs" / f"{rec.run_id}.json").exists()
    log = (tmp_path / "logs" / f"{rec.run_id}.log").read_text()
    assert "Traceback" in log  # the whole story is in the log, not in the record


def test_memory_cap_ends_the_run_as_oom(tmp_path):
    rec = run("_alloc", tmp_path, max_rss_mb=400)
    assert rec.status == "oom"
    assert "--max-rss 400" in rec.error
    assert rec.measurement.sampled_peak_rss_mb > 400
    assert rec.wall_s < 30


@pytest.mark.skipif(bool(nvidia_gpus()[0]), reason="this machine has an NVIDIA GPU")
def test_gpu_fields_are_null_without_a_gpu(tmp_path):
    rec = run("_sleepy", tmp_path, options={"sleep": 0.2})
    assert rec.status == "ok"
    assert rec.gpu_peak_mb is None
    assert all(v is None for v in rec.gpu.model_dump().values())
    assert rec.measurement.gpu_method == "no NVIDIA GPU"
    assert rec.machine.gpu_note == "no NVIDIA GPU" and rec.machine.gpus == []


def test_disk_writes_of_the_run_are_counted(tmp_path):
    rec = run("_disk", tmp_path, options={"mb": 20})
    assert rec.status == "ok"
    assert 19.5 <= rec.disk_written_mb <= 23


def test_sampler_overhead_is_measured_and_small(tmp_path):
    rec = run("_sleepy", tmp_path, options={"sleep": 1.0})
    m = rec.measurement
    assert m.samples >= 15 and m.sample_interval_s <= 0.1  # 10 Hz or faster
    assert m.sampler_cpu_s > 0 and m.sampler_overhead_pct is not None
    assert len(m.timeline) == min(m.samples, 2000)


def test_network_is_refused_at_once_in_an_offline_run(tmp_path):
    t0 = time.perf_counter()
    rec = run("_network", tmp_path)
    assert rec.status == "ok"
    assert "network access blocked" in rec.extra["network_error"]
    assert rec.extra["network_attempts"] == ["203.0.113.7:80"]
    assert time.perf_counter() - t0 < 20  # no time-out wait
