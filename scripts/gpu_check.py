"""GPU measurement check, for a machine with an NVIDIA GPU (needs torch, psutil, nvidia-ml-py; no dspy).

The harness's own poller (harness.measure.TreeSampler, exactly as the runner uses it) samples a child
process that allocates known blocks on the GPU with torch. Printed and written to OUT/gpu_check.json:
what NVML saw per process and per device, next to torch's own peaks inside the child, so the GPU
fields of a run record can be trusted (or not) on this machine.

    OUT=/some/folder PYTHONPATH=. python3 scripts/gpu_check.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.measure import TreeSampler  # noqa: E402

CHILD = r"""
import json, sys, time, torch
blocks = []
for gib in (4, 8, 16):
    blocks.append(torch.empty(gib * 2**30, dtype=torch.uint8, device="cuda").fill_(1))
    torch.cuda.synchronize(); time.sleep(0.6)
peak_alloc = torch.cuda.max_memory_allocated() / 2**20
peak_res = torch.cuda.max_memory_reserved() / 2**20
del blocks; torch.cuda.empty_cache(); time.sleep(0.6)
print(json.dumps({"torch_max_allocated_mb": peak_alloc, "torch_max_reserved_mb": peak_res,
                  "blocks_gib": [4, 8, 16]}))
"""


def main() -> int:
    out = Path(os.environ.get("OUT", "."))
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid, interval_s=0.05).start()
    stdout, _ = proc.communicate(timeout=300)
    fig = sampler.stop()
    child = json.loads(stdout.strip().splitlines()[-1])
    result = {
        "expected_tensor_mb": 28 * 1024,
        **child,
        "nvml_process_peak_mb": fig.gpu_process_peak_mb,
        "nvml_device_peak_minus_before_mb": fig.gpu_device_peak_mb,
        "gpu_method": fig.gpu_method,
        "samples": len(fig.samples),
        "sampler_cpu_s": round(fig.sampler_cpu_s, 4),
        "timeline_gpu_mb": [s[3] for s in fig.samples][:: max(1, len(fig.samples) // 40)],
    }
    print(json.dumps(result, indent=1))
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
