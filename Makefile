# Quick start: `make demo` (offline demo) and `make test` (ruff, mypy, pytest).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest run bench bench-full clean fmt lock

$(STAMP): pyproject.toml setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/timeline-bot demo

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

run: $(STAMP)
	$(BIN)/timeline-bot db upgrade
	$(BIN)/timeline-bot run

bench: $(STAMP)
	$(BIN)/python -m bench --quick

bench-full: $(STAMP)
	$(BIN)/python -m bench --full

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Re-pin constraints.txt to what the venv holds (after changing pyproject.toml's dependencies).
lock: $(STAMP)
	{ echo "# Pinned versions for CI and reproducible installs: the Makefile installs with them (pip -c)."; \
	  echo "# Regenerate after changing the dependencies in pyproject.toml: \`make lock\`."; \
	  $(BIN)/python -m pip freeze --exclude-editable; } > constraints.txt
