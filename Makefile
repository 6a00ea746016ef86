# Playlog developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROJECTS := shared services/api services/collector services/frontend
PYPROJECTS := $(addsuffix /pyproject.toml,$(PROJECTS))
SRC_DIRS := shared/src services/api/src services/collector/src services/frontend/src
TEST_DIRS := $(addsuffix /tests,$(PROJECTS)) tests

.PHONY: help install run test lint fmt typecheck pytest lock clean

help: ## List the make targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements/dev.txt $(PYPROJECTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation $(addprefix -e ,$(PROJECTS))
	@touch $@

install: $(STAMP) ## Create .venv and install every package with pinned dependencies

run: $(STAMP) ## Start PostgreSQL (embedded unless DATABASE_URL is set), api, collector and frontend
	$(BIN)/playlog run

test: $(STAMP) lint typecheck pytest ## Lint, type-check and run every test

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Each project's tests are checked on their own: test modules share names across projects.
typecheck: $(STAMP) ## mypy --strict on sources and tests
	$(BIN)/mypy --strict $(SRC_DIRS) $(wildcard scripts/*.py)
	@for dir in $(TEST_DIRS); do echo "mypy --strict $$dir"; $(BIN)/mypy --strict $$dir || exit 1; done

pytest: $(STAMP) ## Run the test suite against real PostgreSQL
	$(BIN)/pytest $(TEST_DIRS)

lock: $(STAMP) ## Re-pin requirements/*.txt from requirements/*.in
	UV=$(BIN)/uv scripts/compile_requirements.sh

clean: ## Remove the virtualenv and caches (keeps .data, the embedded database)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
