# rpt — make help lists the targets.
PY      ?= .venv/bin/python
PIP     ?= .venv/bin/pip
# The real SuperGLUE files (official JSONL layout); CI points this at ../shared/data/superglue.
RPT_DATA_DIR ?= $(abspath ../shared/data/superglue)
export RPT_DATA_DIR
# Tests never touch the network.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false

.PHONY: help install test test-fast lint format train demo seeds sweep report bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install:  ## create .venv and install rpt with its dev extras (CPU torch from this machine's disk)
	python3 -m venv .venv
	$(PIP) install --quiet --upgrade pip
	# A CPU build of torch first, so that no requirement pulls a multi-GB CUDA build.
	$(PIP) install --quiet "torch==2.13.0" || $(PIP) install --quiet "torch>=2.4,<2.15" --index-url https://download.pytorch.org/whl/cpu
	$(PIP) install --quiet -e ".[dev]"

test:  ## run the whole suite, as CI does (offline)
	$(OFFLINE) $(PY) -m pytest -q -p no:cacheprovider

test-fast:  ## unit tests only
	$(OFFLINE) $(PY) -m pytest -q -m "not integration and not slow" tests/unit

lint:  ## ruff
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

format:  ## ruff format + fixes
	$(PY) -m ruff check --fix src tests benchmarks
	$(PY) -m ruff format src tests benchmarks

train:  ## the main command, offline on the packaged MiniLM: make train ARGS="task=rte"
	$(OFFLINE) $(PY) -m rpt.train model=minilm task=cb prompt=residual_mlp1 trainer=cpu logger=csv $(ARGS)

clean:  ## remove run folders and caches
	rm -rf outputs multirun .pytest_cache .ruff_cache
