# One task runner. Every target creates or refreshes .venv by itself: a fresh clone needs only
# python3 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: setup run test lint bench preview clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP) ## install digest and its development tools into .venv

run: $(STAMP) ## the weekly job once: gather, draft, send (to outbox/ without SMTP settings)
	$(BIN)/digest run --once

test: $(STAMP) ## the whole test suite: on SQLite, then on a PostgreSQL it starts itself
	$(BIN)/python -m pytest
	DIGEST_TEST_DB=postgresql $(BIN)/python -m pytest

lint: $(STAMP) ## ruff and mypy (strict on src/)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP) ## benchmarks, each beside its reference, printed as ratios
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run.py

preview: $(STAMP) ## draft this week's issue and render it into preview/
	$(BIN)/digest draft && $(BIN)/digest preview

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache preview
