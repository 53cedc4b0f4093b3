# Two commands do all set-up: `make run` (the main job) and `make test` (the whole suite).
# Each creates .venv on first use and reinstalls only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Pinned: here it picks the local CPU wheel. On a GPU machine install the CUDA build of the
# same version first (see README); a torch already present that satisfies this is kept.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

# The main job: a 10-minute CPU training run in the background and the live dashboard (Voila,
# installable on a phone) attached to it. Ctrl-C stops the dashboard, then the run (cleanly,
# with a checkpoint); `g2048lab train --resume NAME` continues it.
run: $(STAMP)
	@name=demo-$$(date +%Y%m%d-%H%M%S); \
	$(BIN)/g2048lab train --preset cpu --minutes 10 --run-name $$name --quiet & train=$$!; \
	trap 'kill $$train 2>/dev/null; wait $$train' EXIT INT TERM; \
	until $(BIN)/g2048lab runs --json | grep -q "\"$$name\""; do sleep 1; done; \
	$(BIN)/g2048lab dashboard --run $$name

# The notebooks run under nbval in quick mode (tiny budgets), sharing one temporary runs folder.
test: $(STAMP)
	$(BIN)/ruff check .
	G2048LAB_QUICK=1 G2048LAB_RUNS_DIR=$$(mktemp -d) $(BIN)/python -m pytest tests notebooks --nbval-lax

lint format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/env_throughput.py
