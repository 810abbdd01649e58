# One task runner: `make demo` and `make test` bootstrap .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench fake-server soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m devin_async.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict devin_async

# coverage starts before pytest so it also sees the package imported by our pytest11 plugin.
test: lint typecheck
	bash .ci/prism.sh
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest
	$(BIN)/coverage report

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# The chaos soak at full size (under a minute); `make test` runs it with 150 sessions.
soak: $(STAMP)
	$(BIN)/python tests/soak.py --sessions 1000

fake-server: $(STAMP)
	$(BIN)/devin-async fake-server

clean:
	rm -rf $(VENV) .coverage .mypy_cache .ruff_cache .prism .hypothesis
