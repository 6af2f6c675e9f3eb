# wconv: every command a user needs. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE  ?= smoke
LAUNCHER ?= local

ARGS     ?=

.PHONY: help install test test-gpu lint bench preflight reproduce-table tables figures clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# Reinstall when the venv's wconv is not this checkout's (an editable install made from another clone).
INSTALLED := $(shell test -x $(PY) && $(PY) -c "import importlib.util as u; print(u.find_spec('wconv').origin)" 2>/dev/null)
ifneq ($(INSTALLED),$(CURDIR)/src/wconv/__init__.py)
.PHONY: $(STAMP)
endif

$(STAMP): pyproject.toml
	@if [ -n "$(INSTALLED)" ]; then echo "make: .venv imports wconv from $(INSTALLED), not this checkout: reinstalling"; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install wconv with its test extras (idempotent)

test: $(STAMP)  ## run the whole test suite
	WANDB_MODE=disabled $(PY) -m pytest -q

test-gpu: $(STAMP)  ## the GPU checks (bf16, compile, channels_last, workers per GPU, NCCL, preflight): first on a GPU node
	WANDB_MODE=disabled $(PY) -m pytest -q -rs tests/test_cuda.py

lint: $(STAMP)  ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)  ## overhead of the weighted layer and models, epoch efficiency: results/bench/
	$(PY) scripts/bench.py --efficiency

preflight: $(STAMP)  ## rehearse PROFILE's jobs at full size here, predict their cost -> results/preflight/<device>.csv (ARGS='--fabricate data-fake')
	$(PY) scripts/preflight.py --profile $(PROFILE) $(ARGS)

reproduce-table: $(STAMP)  ## the papers' tables: PROFILE=smoke|cpu|paper LAUNCHER=local|slurm ARGS='-- data.root=...' -> results/tables/<profile>/
	$(PY) scripts/reproduce_table.py --profile $(PROFILE) --launcher $(LAUNCHER) $(ARGS)

tables: $(STAMP)  ## aggregate recorded runs into results/tables/<profile>/ (no training): PROFILE=smoke|cpu|paper
	$(PY) scripts/tables.py --profile $(PROFILE)

figures: $(STAMP)  ## the figures from recorded results (no training) -> results/figures/<profile>/
	$(PY) scripts/figures.py --profile $(PROFILE)

clean:  ## remove caches (keeps .venv, runs and results)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
