"""Where a bench's runs execute: here (one fresh measured child process per run), or as Ray tasks.

`--executor ray` (make bench EXECUTOR=ray) sends each run to a Ray cluster: RAY_ADDRESS names an existing one
(Ray's own variable), else a local one is started. The task starts the same fresh measured child process on
its node (harness.runner.run_one into a scratch folder there) and returns the record and log, which this process
writes into OUT as a local run's, so resume, locks and the report work as for a local bench. The record's
machine is the node's own (run_one describes the machine it runs on). Ray is an optional extra, installed on
first use (pip install 'dspy-resource-bench[ray]').
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from harness.errors import HarnessError, Interrupted
from harness.files import atomic_write_text
from harness.install import pip_install
from harness.record import RunRecord
from harness.runner import ALONE, STOP, Beside, RunSpec, run_one

EXECUTORS = ("local", "ray")
RAY_REQUIREMENT = "ray>=2.40,<3"


class LocalExecutor:
    name = "local"

    def run(self, spec: RunSpec, out: Path, progress: Callable[[str], None] | None = None, served=None,
            beside: Beside = ALONE) -> RunRecord:
        return run_one(spec, out, progress=progress, served=served, beside=beside)

    def close(self) -> None:
        pass


def _run_on_node(spec: dict[str, Any]) -> tuple[str, str]:
    """(record JSON, log text) of one run, made on this node in a scratch OUT (a Ray task's body); the record's
    extra.ray_node names the Ray node (several may share one machine)."""
    import ray

    scratch = Path(tempfile.mkdtemp(prefix="harness-ray-"))
    try:
        rec = run_one(RunSpec(**spec), scratch)
        rec = rec.model_copy(update={"extra": {**rec.extra, "ray_node": ray.get_runtime_context().get_node_id()}})
        log = scratch / "logs" / f"{rec.run_id}.log"
        return rec.model_dump_json(indent=1), log.read_text(errors="replace") if log.exists() else ""
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _ray():
    """The ray module, installed into this environment on first use."""
    try:
        import ray
    except ImportError:
        pip_install([RAY_REQUIREMENT], lambda m: print(m, file=sys.stderr, flush=True), RAY_REQUIREMENT,
                    "--executor ray needs Ray (pip install 'dspy-resource-bench[ray]')")
        import ray
    return ray


class RayExecutor:
    """Each run a Ray task (1 CPU) on the cluster at RAY_ADDRESS, or on a local one started here."""

    name = "ray"

    def __init__(self) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # (offline: Ray reports nothing anywhere)
        self.ray = _ray()
        address = os.environ.get("RAY_ADDRESS") or None
        kwargs = {} if address else {"num_cpus": os.cpu_count() or 1}
        try:
            self.ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                          runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}},
                          **kwargs)
        except Exception as exc:  # a cluster that cannot be reached, or a local one that cannot start
            auth = (" (a cluster that `ray start` made has token authentication: give this process the cluster's "
                    "token, RAY_AUTH_TOKEN or ~/.ray/auth_token, or start every node with RAY_AUTH_MODE=disabled)"
                    if address and not os.environ.get("RAY_AUTH_TOKEN") else "")
            raise HarnessError(f"--executor ray: cannot start or reach a Ray cluster"
                               f"{f' at RAY_ADDRESS={address}' if address else ''}: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200] if str(exc) else ''}{auth}") from None
        self.task = self.ray.remote(num_cpus=1, max_retries=0)(_run_on_node)
        self.cluster = "RAY_ADDRESS" if address else f"a local Ray cluster ({kwargs['num_cpus']} CPUs)"

    def run(self, spec: RunSpec, out: Path, progress: Callable[[str], None] | None = None, served=None,
            beside: Beside = ALONE) -> RunRecord:
        with beside.running() as others:
            ref = self.task.remote(asdict(spec))
            while True:
                done, _ = self.ray.wait([ref], timeout=0.5)
                if done:
                    break
                if STOP.is_set():
                    self.ray.cancel(ref, force=True)
                    raise Interrupted()
            try:
                text, log = self.ray.get(ref)
            except Exception as exc:  # the task itself died (its node lost, a worker killed)
                raise HarnessError(f"{spec.run_id}: its Ray task failed: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from None
            ran_beside = others()
        record = RunRecord.model_validate_json(text).model_copy(update={"jobs": beside.jobs, "ran_beside": ran_beside})
        atomic_write_text(out / "runs" / f"{record.run_id}.json", record.model_dump_json(indent=1) + "\n")
        atomic_write_text(out / "logs" / f"{record.run_id}.log", log)
        return record

    def close(self) -> None:
        self.ray.shutdown()


def executor_of(name: str):
    if name not in EXECUTORS:
        raise HarnessError(f"unknown executor {name!r}: use one of {', '.join(EXECUTORS)}")
    return RayExecutor() if name == "ray" else LocalExecutor()
