"""--jobs N: N runs at once, each still its own measured process tree, its figures its own."""

from __future__ import annotations

import json
import threading

import pytest

from harness.runner import Beside
from tests.helpers import harness


def records(out):
    return {r["strategy"]: r for r in (json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json")))}


def test_beside_counts_the_most_runs_alive_beside_each():
    beside = Beside(jobs=3)
    a_in, b_in, b_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with beside.running() as others:
            a_in.set()
            b_out.wait(5)
            seen["a"] = others()

    def b():
        a_in.wait(5)
        with beside.running() as others:
            b_in.set()
            seen["b_inside"] = others()
        b_out.set()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    with beside.running() as others:  # alone afterwards
        seen["c"] = others()
    assert seen == {"a": 1, "b_inside": 1, "c": 0}


def test_a_parallel_bench_keeps_each_runs_cpu_its_own_and_says_it_ran_beside_another(tmp_path):
    """A busy run (2 s of CPU) and an idle one (asleep 4 s) at once: the idle run's CPU time stays its own (a
    getrusage(RUSAGE_CHILDREN) delta would have added the busy run's, which ended inside its window)."""
    out = tmp_path / "par"
    r = harness("bench", "--profile", "quick", "--strategy", "_burn,_sleepy", "--task", "_toy", "--jobs", "2",
                "--set", "_sleepy.sleep=4", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    recs = records(out)
    burn, idle = recs["_burn"], recs["_sleepy"]
    assert burn["status"] == idle["status"] == "ok"
    assert burn["jobs"] == idle["jobs"] == 2 and burn["ran_beside"] == idle["ran_beside"] == 1
    assert burn["cpu_s"] >= 2.0
    assert idle["cpu_s"] < burn["cpu_s"] - 1.5, (idle["cpu_s"], burn["cpu_s"])
    assert idle["wall_s"] >= 4.0
    assert "wait4()" in idle["measurement"]["cpu_method"]
    assert not (out / "benchmark.json").exists()  # (pytest-benchmark would time runs sharing the CPUs)
    text = (out / "report.md").read_text()
    assert "A parallel bench: 2 runs at once" in text
    assert "2 at once" in r.stderr  # the ETA says so


def test_a_parallel_bench_gives_the_serial_ones_calls_tokens_and_scores(tmp_path):
    args = ["bench", "--profile", "quick", "--strategy", "LabeledFewShot,BootstrapFewShot", "--task", "math,classify"]
    serial, par = harness(*args, "--out", str(tmp_path / "s")), harness(*args, "--jobs", "3", "--out",
                                                                           str(tmp_path / "p"))
    assert serial.returncode == 0 and par.returncode == 0, (serial.stderr[-1500:], par.stderr[-1500:])
    fields = ("status", "lm_calls", "input_tokens", "output_tokens", "api_cost_usd", "score_before", "score_after")
    s_runs = {p.name: json.loads(p.read_text()) for p in (tmp_path / "s" / "runs").glob("*.json")}
    p_runs = {p.name: json.loads(p.read_text()) for p in (tmp_path / "p" / "runs").glob("*.json")}
    assert sorted(s_runs) == sorted(p_runs) and len(s_runs) == 4
    for name in s_runs:
        assert {f: s_runs[name][f] for f in fields} == {f: p_runs[name][f] for f in fields}, name
        assert s_runs[name]["jobs"] == 1 and s_runs[name]["ran_beside"] == 0 and p_runs[name]["jobs"] == 3
    assert max(r["ran_beside"] for r in p_runs.values()) >= 1


def test_jobs_is_refused_with_a_server_the_harness_starts_and_when_not_a_count(tmp_path):
    r = harness("bench", "--profile", "quick", "--strategy", "LabeledFewShot", "--task", "math", "--lm",
                "offline-http", "--jobs", "2", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--jobs 2 cannot share --lm offline-http" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = harness("bench", "--profile", "quick", "--jobs", "0", "--out", str(tmp_path / "z"))
    assert r.returncode == 2 and "--jobs must be a whole number, 1 or more, got '0'" in r.stderr, r.stderr


def test_a_bench_on_a_local_ray_cluster_gives_the_local_benchs_records(tmp_path):
    """--executor ray: each run a Ray task on a local cluster (ray.init(num_cpus=2)) starting the same measured
    child process; the stack-only figures of every record equal a local bench's, byte for byte."""
    args = ["bench", "--profile", "quick", "--strategy", "LabeledFewShot,BootstrapFewShot", "--task", "math,classify"]
    local = harness(*args, "--out", str(tmp_path / "local"))
    ray = harness(*args, "--executor", "ray", "--jobs", "2", "--out", str(tmp_path / "ray"), timeout=600)
    assert local.returncode == 0 and ray.returncode == 0, (local.stderr[-1500:], ray.stderr[-3000:])
    assert "as Ray tasks, 2 at once" in ray.stderr
    fields = ("run_id", "status", "lm_calls", "input_tokens", "output_tokens", "api_cost_usd", "score_before",
              "score_after", "n_train", "n_dev", "n_test")
    loc = {p.name: json.loads(p.read_text()) for p in (tmp_path / "local" / "runs").glob("*.json")}
    far = {p.name: json.loads(p.read_text()) for p in (tmp_path / "ray" / "runs").glob("*.json")}
    assert sorted(loc) == sorted(far) and len(loc) == 4
    for name in loc:
        assert json.dumps([loc[name][f] for f in fields]) == json.dumps([far[name][f] for f in fields]), name
        assert far[name]["machine"]["machine_id"] and far[name]["jobs"] == 2 and far[name]["extra"]["ray_node"]
        assert (tmp_path / "ray" / "logs" / name.replace(".json", ".log")).stat().st_size > 0
    assert (tmp_path / "ray" / "report.md").exists()


def test_a_report_of_runs_on_two_machines_puts_their_times_and_ram_apart():
    """A bench on a Ray cluster gathers runs from several nodes: the report lists the machines and gives each
    machine's wall, CPU and RAM figures their own column (the committed 3.4.1 matrix bench, half its runs moved to
    a second machine by hand)."""
    from harness.load import load_report
    from harness.report.markdown import by_machine_lines, context_section

    report = load_report("results/matrix-quick/3.4.1/report.json")
    assert by_machine_lines(report) == []  # one machine: the cost card's medians are that machine's
    other = report.runs[0].machine.model_copy(update={"machine_id": "0ther0node000", "hostname": "node-2"})
    moved = [r.model_copy(update={"machine": other}) if r.task == "classify" else r for r in report.runs]
    report = report.model_copy(update={"runs": moved})
    lines = by_machine_lines(report)
    assert lines[0].startswith("**Times and RAM by machine** (2 machines")
    header = lines[2]
    assert f"`{report.runs[0].machine.machine_id}`" in header and "`0ther0node000` (node-2)" in header
    rows = {tuple(c.strip() for c in line.strip("|").split("|"))[:2]: line for line in lines[4:] if line}
    math = next(r for r in report.runs if r.key == ("COPRO", "math"))
    assert f"{math.peak_rss_mb:,.0f} MiB (1) | - |" in rows["COPRO", "math"]  # its machine's column, not the other's
    assert rows["COPRO", "classify"].rstrip().endswith("MiB (1) |") and "| - |" in rows["COPRO", "classify"]
    assert any("**Runs on 2 machines**" in line for line in context_section(report))
