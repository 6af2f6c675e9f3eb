# wconv: every command a user needs. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE  ?= smoke
LAUNCHER ?= local

.PHONY: help install test lint bench reproduce-table tables figures clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install wconv with its test extras (idempotent)

test: $(STAMP)  ## run the whole test suite
	WANDB_MODE=disabled $(PY) -m pytest -q

lint: $(STAMP)  ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)  ## overhead of the weighted layer and models: results/bench/overhead.csv
	$(PY) scripts/bench.py

reproduce-table: $(STAMP)  ## the papers' tables: PROFILE=smoke|paper LAUNCHER=local|slurm -> results/tables/
	$(PY) scripts/reproduce_table.py --profile $(PROFILE) --launcher $(LAUNCHER)

tables: $(STAMP)  ## aggregate recorded runs into results/tables/ (no training): PROFILE=smoke|paper
	$(PY) scripts/tables.py --runs runs/table/$(PROFILE)

figures: $(STAMP)  ## the figures from recorded results (no training) -> results/figures/
	$(PY) scripts/figures.py --runs runs/table/$(PROFILE)

clean:  ## remove caches (keeps .venv, runs and results)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
