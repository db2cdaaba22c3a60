# dspy-resource-bench. Two commands do all set-up on a fresh machine: `make bench` and `make test`.
# Both create .venv here and install the pinned stack into it (offline-capable: torch comes from local disk).

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed

# A local model (LM=local/smollm2-135m) runs the profile sized for it unless PROFILE says otherwise.
PROFILE ?= $(if $(filter local/%,$(LM)),local,standard)
OUT     ?= results/latest
REPEAT  ?= 1
# The whole suite (no STRATEGY, TASK or LM; profile quick or standard) also measures fine-tuning memory against
# model size and how calls and tokens grow with the train set, so that every claim can get its verdict:
# `python -m harness bench` does those steps itself; EXTRAS=0 leaves them out.
EXTRAS  ?= 1
# The variables reach the CLI as flags, never as environment variables it would read unnoticed.
BENCH_FLAGS = --profile $(PROFILE) --out $(OUT) --repeat $(REPEAT) \
	$(if $(STRATEGY),--strategy $(STRATEGY)) $(if $(TASK),--task $(TASK)) $(if $(LM),--lm $(LM)) \
	$(if $(API_BASE),--api-base $(API_BASE)) $(if $(PRICE_AS),--price-as $(PRICE_AS)) \
	$(if $(PROMPT_LM),--prompt-lm $(PROMPT_LM)) $(if $(PROMPT_API_BASE),--prompt-api-base $(PROMPT_API_BASE)) \
	$(if $(LM_SERVER),--lm-server '$(LM_SERVER)') $(if $(filter-out 0,$(RESUME)),--resume) \
	$(if $(filter-out 0,$(KEEP_FAILED)),--keep-failed) $(if $(MAX_SPEND),--max-spend $(MAX_SPEND)) \
	$(if $(MAX_CALLS),--max-calls $(MAX_CALLS)) $(if $(filter 0,$(EXTRAS)),--runs-only) \
	$(if $(JOBS),--jobs $(JOBS)) $(if $(EXECUTOR),--executor $(EXECUTOR))

.PHONY: matrix bench test bench-memory report claims check baseline list clean help

help:
	@echo "make bench         run every strategy on every task (PROFILE=quick|standard, STRATEGY=a,b TASK=x OUT=dir"
	@echo "                   REPEAT=N RESUME=1 LM=provider/model API_BASE=url) and write OUT/report.json, .md, .csv, plots"
	@echo "                   then (whole suite only) the memory bench and the scaling runs, and the report again"
	@echo "                   LM=local/smollm2-135m (or local/gemma3-270m): a real model, installed on first use and"
	@echo "                   served on 127.0.0.1 by the harness; PROFILE=local by default (classify, small budgets)"
	@echo "                   PROFILE=real-student: every strategy, the weight ones fine-tuning a real pretrained student"
	@echo "                   (SmolLM2-135M, LoRA; with LM=local/<name>, that same model as task LM, teacher and student)"
	@echo "                   MAX_SPEND=USD: each run projected offline first, refused over the cap, stopped at it;"
	@echo "                   MAX_CALLS=N: each run stopped at N LM calls (a hosted LM without a cap asks first)"
	@echo "                   PROMPT_LM=provider/model (PROMPT_API_BASE=url): a second LM for the optimizers' own"
	@echo "                   prompts (proposals, reflections), counted and priced apart"
	@echo "                   JOBS=N: N runs at once, each its own measured process (wall times labelled, not gated"
	@echo "                   against a serial bench's); EXECUTOR=ray: each run a Ray task (RAY_ADDRESS, else a"
	@echo "                   local cluster; Ray installs on first use)"
	@echo "make matrix        the quick bench against several DSPy releases (DSPY=2.6.27,3.0.4,3.3.1,3.4.1;"
	@echo "                   3.4.1:litellm for 3.4's LiteLLM engine), each in its own uv environment, side by side"
	@echo "                   in MATRIX_OUT/matrix.md (MATRIX_PROFILE=quick, STRATEGY=, TASK=)"
	@echo "make test          run the test suite"
	@echo "make bench-memory  fine-tuning memory and speed vs model size -> OUT/finetune_memory.json"
	@echo "make report        rebuild OUT's report files from its run records"
	@echo "make check         quick bench, then fail if any resource cost regressed vs results/baseline (times"
	@echo "                   and RAM from another machine or a contended run count only once re-runs confirm them)"
	@echo "make baseline      refresh results/baseline on purpose (quick profile, 3 repeats)"

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[bench,test]"
	touch $(STAMP)

bench: $(STAMP)
	$(PY) -m harness bench $(BENCH_FLAGS)

test: $(STAMP)
	bash scripts/ensure_chromium.sh
	$(PY) -m pytest -q --durations=15

# One environment per DSPy release (uv, under .venv-dspy/, on first use), the same offline LM served over loopback
# HTTP to all of them: MATRIX_OUT/<release>/ per release and MATRIX_OUT/matrix.md side by side.
DSPY           ?= 2.6.27,3.0.4,3.3.1,3.4.1
MATRIX_PROFILE ?= quick
MATRIX_OUT     ?= results/matrix-$(MATRIX_PROFILE)
matrix: $(STAMP)
	$(PY) -m harness matrix --dspy $(DSPY) --profile $(MATRIX_PROFILE) --out $(MATRIX_OUT) \
		$(if $(STRATEGY),--strategy $(STRATEGY)) $(if $(TASK),--task $(TASK)) $(if $(filter-out 0,$(RESUME)),--resume)

bench-memory: $(STAMP)
	$(PY) -m harness memory --out $(OUT) --profile standard

report: $(STAMP)
	$(PY) -m harness report $(OUT)

claims: $(STAMP)
	$(PY) -m harness claims $(OUT)/report.json

# check: times, RAM and disk count against results/baseline only if it was made on this machine, or once
# re-runs here confirm them (--confirm re-runs each flagged pair twice into results/check/confirm/<time>/);
# calls, tokens, spend, score and status count on any machine.
check: $(STAMP)
	$(PY) -m harness bench --profile quick --out results/check
	$(PY) -m harness check --baseline results/baseline --current results/check --confirm $(if $(THRESHOLDS),--thresholds $(THRESHOLDS))

baseline: $(STAMP)
	rm -rf results/baseline.new
	$(PY) -m harness bench --profile quick --repeat 3 --out results/baseline.new
	rm -rf results/baseline && mv results/baseline.new results/baseline

list: $(STAMP)
	$(PY) -m harness list

clean:
	rm -rf results/latest results/check results/runs .pytest_cache
