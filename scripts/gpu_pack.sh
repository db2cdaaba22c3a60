#!/usr/bin/env bash
# Packs what scripts/gpu_weights.sh needs on a bare GPU machine (no network, no package registry) into .gpu/
# (git-ignored; name it in the device run's `carry`). Run here, from the repository root, once:
#
#     bash scripts/gpu_pack.sh
#
# .gpu/wheels    the packages in scripts/gpu_wheels.txt as CPython 3.12 manylinux wheels (pip download)
# .gpu/tiktoken  the tiktoken files litellm ships (cl100k_base, o200k_base, ...): the offline LM's token counts
# .gpu/student   SmolLM2-135M's config.json, tokenizer and chat template, without its weights: its 98 MB GGUF
#                cannot travel (64 MiB in all), so the GPU run builds a model of that architecture and size
#                with random weights (the record's training.extra.init = "config": real memory and step time,
#                no real score)
# It refuses to finish if the working tree plus .gpu/ would be over the 64 MiB a device run may carry.
set -euo pipefail
PY=${PY:-.venv/bin/python}
rm -rf .gpu && mkdir -p .gpu/wheels .gpu/tiktoken .gpu/student
grep -v '^#' scripts/gpu_wheels.txt | xargs "$PY" -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .gpu/wheels
"$PY" - <<'PY'
import shutil
from pathlib import Path

from harness.lm.local import ensure_student
from harness.lm.tokens import _litellm_bpe_dir

bpe = Path(_litellm_bpe_dir() or "")
for f in bpe.iterdir():  # tiktoken's cache files are named by the sha1 of their URL
    if f.is_file() and len(f.name) == 40:
        shutil.copy(f, Path(".gpu/tiktoken") / f.name)
folder = ensure_student("local/smollm2-135m", print)  # the GGUF made into an HF folder (installed on first use)
for f in folder.iterdir():
    if f.is_file() and not f.name.endswith((".safetensors", ".bin")):
        shutil.copy(f, Path(".gpu/student") / f.name)
PY
tree_kib=$(git ls-files -co --exclude-standard -z | du -ck --files0-from=- | tail -1 | cut -f1)
gpu_kib=$(du -sk .gpu | cut -f1)
echo "packed .gpu: $((gpu_kib / 1024)) MiB (wheels $(ls .gpu/wheels | wc -l), tiktoken $(ls .gpu/tiktoken | wc -l), student $(ls .gpu/student | wc -l) files); working tree $((tree_kib / 1024)) MiB"
if [ $((tree_kib + gpu_kib)) -gt $((64 * 1024)) ]; then
    echo "error: working tree + .gpu is $(((tree_kib + gpu_kib) / 1024)) MiB, over the 64 MiB a device run carries" >&2
    exit 1
fi
