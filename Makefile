# One command to set up and train (`make train`), one to set up and test (`make test`).
# Both create ./.venv on first use and reuse it afterwards.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: train test setup setup-test bench clean

$(BIN)/msmtrec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(VENV)/.test-deps: $(BIN)/msmtrec
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

setup: $(BIN)/msmtrec
setup-test: $(VENV)/.test-deps

train: $(BIN)/msmtrec
	$(BIN)/msmtrec train $(ARGS)

test: $(VENV)/.test-deps
	$(BIN)/python -m pytest $(ARGS)

bench: $(BIN)/msmtrec
	$(BIN)/python benchmarks/throughput.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
