#!/usr/bin/env bash
# One weight strategy end to end on an NVIDIA GPU, with a student of a real model's architecture and size:
# BootstrapFinetune (the offline LM as teacher) on classify at the real-student profile's sizes, training a
# SmolLM2-135M-shaped student (random weights: its GGUF cannot travel; LoRA, then full) on the GPU, each run a
# measured process tree as everywhere (NVML per-process and device peaks, torch's peaks, host RSS).
#
# Here, once:            bash scripts/gpu_pack.sh                     (makes .gpu/, git-ignored)
# On the GPU machine:    OUT=/some/folder bash scripts/gpu_weights.sh     (carry: .gpu)
#
# Needs the image's python3 with torch, transformers, peft, psutil, pandas and nvidia-ml-py; installs the
# packed wheels into /tmp/site, no network. Writes $OUT/gpu-weights.tar.gz (the records, logs and report of
# OUT/gpu-weights) and $OUT/summary.txt. About 2-4 minutes on one H200 (mostly imports and CUDA start).
set -euo pipefail
: "${OUT:?set OUT to the output folder}"
test -d .gpu/wheels || { echo "error: no .gpu/: run scripts/gpu_pack.sh here and carry .gpu" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv || true
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl
export PYTHONPATH=/tmp/site TIKTOKEN_CACHE_DIR=$PWD/.gpu/tiktoken PYTHONUNBUFFERED=1
W=$OUT/gpu-weights
for mode in lora full; do
    python3 -m harness run --strategy BootstrapFinetune --task classify --profile real-student \
        --student .gpu/student --mode "$mode" --out "$W/$mode" --timeout 400 || true
done
for mode in lora full; do
    python3 -m harness report "$W/$mode" >/dev/null 2>&1 || true
    python3 - "$W/$mode/runs/BootstrapFinetune__classify__r0.json" <<'PY' | tee -a "$OUT/summary.txt" || true
import json, sys
r = json.load(open(sys.argv[1]))
t, g = r.get("training") or {}, r.get("gpu") or {}
print(f"{t.get('mode')}: status {r['status']}, wall {r['wall_s']:.1f} s, host peak RSS {r['peak_rss_mb']:.0f} MiB, "
      f"GPU peak (NVML) {r.get('gpu_peak_mb')} MiB, torch peak allocated {g.get('torch_peak_allocated_mb')} MiB, "
      f"{t.get('steps')} steps, {t.get('train_s')} s training, {t.get('total_params')} params "
      f"({t.get('trainable_params')} trained), device {t.get('device')}, init {(t.get('extra') or {}).get('init')}, "
      f"error {r.get('error')}")
PY
done
tar -czf "$OUT/gpu-weights.tar.gz" -C "$OUT" gpu-weights && rm -rf "$W"
