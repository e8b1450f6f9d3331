# Every target creates or reuses .venv and installs what it needs: a fresh clone
# with only python3 and make is enough.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
LOCAL_STAMP := $(VENV)/.installed-local
# Benchmark-only packages (obstore, strands-agents) stay out of the dev venv.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-bench

.PHONY: install test lint demo clean terraform-check bench bench-quick

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The demo needs only the command and the embedded server: a lighter install than dev's.
$(LOCAL_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[local]'
	touch $(LOCAL_STAMP)

install: $(STAMP)

$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m benchmarks

bench-quick: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m benchmarks --quick

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict s3store examples

terraform-check:
	bash terraform/check.sh

demo: $(LOCAL_STAMP)
	$(BIN)/s3store demo

clean:
	rm -rf $(VENV) $(BENCH_VENV) .venv-checkov .pytest_cache .mypy_cache .ruff_cache .hypothesis dist build
