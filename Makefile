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

# make demo: the offline quick start (conf/experiment/demo.yaml), into DEMO_DIR.
DEMO_STAMP  := $(shell date +%Y-%m-%d_%H-%M-%S)
DEMO_DIR    ?= outputs/demo/$(DEMO_STAMP)

demo:  ## offline quick start: train, validate and export a residual prompt on the packaged MiniLM for CB (minutes, 2 CPUs)
	$(OFFLINE) $(PY) -m rpt.train experiment=demo hydra.run.dir=$(DEMO_DIR) $(ARGS)
	@$(PY) -c "$$DEMO_SUMMARY" $(DEMO_DIR)

# What `make demo` prints at the end: validation per epoch, then where each thing went.
define DEMO_SUMMARY
import csv, sys
from pathlib import Path
run = Path(sys.argv[1]).resolve()
with open(run / "csv" / "metrics.csv") as f:
    rows = [r for r in csv.DictReader(f) if r.get("val/score")]
print()
for r in rows:
    print(f"[demo] epoch {int(r['epoch']) + 1}: CB val accuracy {float(r['val/accuracy']):.3f}, "
          f"macro-F1 {float(r['val/f1_macro']):.3f}, score {float(r['val/score']):.3f}")
print(f"[demo] run folder     {run}")
print(f"[demo]   config       {run / '.hydra' / 'config.yaml'}")
print(f"[demo]   log, metrics {run / 'train.log'}, {run / 'csv' / 'metrics.csv'}")
print(f"[demo]   checkpoints  {run / 'checkpoints'}: best.ckpt (by val/score), last.ckpt; prompt network and head only")
print(f"[demo]   export       {run / 'export'}: " + ", ".join(sorted(p.name for p in (run / 'export').iterdir())))
endef
export DEMO_SUMMARY

# Studies (make seeds / make sweep / make report). Comma lists are Hydra multirun sweeps.
# TASKS=cb,rte for both: a MiniLM epoch costs ~1 CPU-minute on CB, ~13 on RTE (docs/experiments.md).
TASKS       ?= cb
PROMPTS     ?= none,residual_mlp1
SEEDS       ?= 0,1,2,3,4
LRS         ?= 0.03,0.3,1.0
BOTTLENECKS ?= 100,400,800
LENGTHS     ?= 10,50,100
SWEEP_SEEDS ?= 0
STAMP       := $(shell date +%Y-%m-%d_%H-%M-%S)
SEEDS_DIR   ?= outputs/multirun/seeds/$(STAMP)
SWEEP_DIR   ?= outputs/multirun/sweep/$(STAMP)

seeds:  ## seed study, packaged MiniLM, offline: make seeds TASKS=cb PROMPTS=none,residual_mlp1 SEEDS=0,1,2 ARGS=...
	$(OFFLINE) $(PY) -m rpt.train -m experiment=minilm_seeds task=$(TASKS) prompt=$(PROMPTS) seed=$(SEEDS) hydra.sweep.dir=$(SEEDS_DIR) $(ARGS)
	$(PY) -m rpt.report $(SEEDS_DIR)

sweep:  ## lr x bottleneck x prompt length, MiniLM, offline: make sweep TASKS=cb LRS=0.03,0.3 BOTTLENECKS=400,800 LENGTHS=10,100
	$(OFFLINE) $(PY) -m rpt.train -m experiment=minilm_seeds task=$(TASKS) prompt=residual_mlp1 optimizer.lr=$(LRS) prompt.net.bottleneck=$(BOTTLENECKS) prompt.length=$(LENGTHS) seed=$(SWEEP_SEEDS) hydra.sweep.dir=$(SWEEP_DIR) $(ARGS)
	$(PY) -m rpt.report $(SWEEP_DIR)

report:  ## tables and plots from finished runs: make report DIR=outputs/multirun/seeds/<time> [REPORT_ARGS="--metric val/accuracy"]
	@test -n "$(DIR)" || { echo "usage: make report DIR=<multirun folder, run folder or wandb CSV> [REPORT_ARGS=...]"; exit 2; }
	$(PY) -m rpt.report $(DIR) $(REPORT_ARGS)

clean:  ## remove run folders and caches
	rm -rf outputs multirun .pytest_cache .ruff_cache

bench:  ## the main training-throughput benchmark (rpt vs PEFT vs the bound; minutes; docs/performance.md)
	$(OFFLINE) $(PY) -m benchmarks.train_throughput --backbone minilm --tasks cb,rte,multirc
