#!/usr/bin/env bash
# Fine-tuning memory and speed of the GPU students (about 0.5B, 1B, 3B and 8B parameters, random-initialised,
# bf16) on one NVIDIA GPU, full fine-tuning and LoRA, each (size, mode) in a fresh process.
#
# Run from the repository root on the GPU machine:  OUT=/some/folder bash scripts/gpu_memory.sh
# Needs python3 with torch, transformers, peft, psutil and nvidia-ml-py; no dspy, no network.
# Writes $OUT/finetune_memory.json (see harness/training/memory.py for every field).
#
# Sized for one H200 (141 GB) in under 6 minutes: batch 1 x 256 tokens, 4 steps (the first untimed),
# 8 workers of ~20-40 s each (mostly imports and CUDA start), at most 90 s each, and no new worker after
# 330 s. Full fine-tuning of the 8B size holds bf16 weights, gradients and AdamW's two bf16 moments
# (~8 B/param, ~64 GB) plus activations; an out-of-memory run is recorded as status "oom", not raised.
set -euo pipefail
: "${OUT:?set OUT to the output folder}"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv || true
PYTHONPATH=. python3 -m harness.training.memory --out "$OUT" --gpu-only --modes full,lora \
    --steps 4 --gpu-batch 1 --gpu-seq 256 --timeout 90 --budget-s 330
