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

# The second S3 server and the supported Pythons come from pyenv's (or PATH's) interpreters.
PYENV_VERSIONS := $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)/versions
find_python = $(firstword $(wildcard $(PYENV_VERSIONS)/$(1).*/bin/python) $(shell command -v python$(1)))
LOCALSTACK_VENV := .venv-localstack
LOCALSTACK_STAMP := $(LOCALSTACK_VENV)/.installed-localstack
# Every Python the package supports, each in a venv of its own (.venv-3.10, ...).
# SKIP_PYTHON leaves some out: CI skips the dev venv's, which `make test` ran.
MATRIX := $(filter-out $(SKIP_PYTHON),3.10 3.11 3.12 3.13)
# What can differ between Pythons: asyncio (lifetimes, loops, the sync bridge, locks),
# typing and pydantic (the models, the wire format), the object layer and the store's
# contract over it, imports. The rest (CLI, Terraform, faults, frameworks) runs once.
MATRIX_TESTS := tests/test_models.py tests/test_keys.py tests/test_errors.py \
  tests/test_store.py tests/test_objects.py tests/test_exactly_once.py tests/test_lifetime.py \
  tests/test_loopbound.py tests/test_sync.py tests/test_imports.py tests/test_local.py \
  tests/test_hostile.py tests/test_readme.py
# pytest exits 5 when it collected no tests: a broken selection, never a pass.
pytest = ( $(1) -m pytest $(2); status=$$?; \
  if [ $$status -eq 5 ]; then echo "pytest collected no tests: nothing was checked" >&2; fi; \
  exit $$status )

.PHONY: install test lint demo clean terraform-check bench bench-quick test-localstack test-matrix

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,frameworks]'
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

# The whole suite, the framework adapters' included, two workers.
test: $(STAMP)
	@$(call pytest,$(BIN)/python,-n 2 --dist loadfile)

# LocalStack (its own S3, not moto's) needs Python 3.13 (4.14 imports warnings.deprecated),
# in a venv of its own; the suite itself runs on the dev venv's Python and starts it.
$(LOCALSTACK_STAMP):
	@py="$(call find_python,3.13)"; \
	  test -n "$$py" || { echo "test-localstack needs Python 3.13 for LocalStack (pyenv or PATH): none found" >&2; exit 2; }; \
	  test -x $(LOCALSTACK_VENV)/bin/python || "$$py" -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/python -m pip install -q --disable-pip-version-check \
	  'localstack-core[base-runtime]==4.14.0' 'cbor2<6' 'pyopenssl<26'
	touch $(LOCALSTACK_STAMP)

# The whole suite against LocalStack (two workers, a LocalStack each); tests of what
# it lacks skip, saying what.
test-localstack: $(STAMP) $(LOCALSTACK_STAMP)
	@export S3STORE_TEST_SERVER=localstack; $(call pytest,$(BIN)/python,-n 2 --dist loadfile)

.venv-%/.installed-test: pyproject.toml
	@py="$(call find_python,$*)"; \
	  test -n "$$py" || { echo "test-matrix needs Python $* (pyenv or PATH): none found" >&2; exit 2; }; \
	  test -x .venv-$*/bin/python || "$$py" -m venv .venv-$*
	.venv-$*/bin/python -m pip install -q --disable-pip-version-check -e '.[test,local]'
	touch $@

# What can differ between Pythons (MATRIX_TESTS) on every supported Python, two workers each.
test-matrix: $(foreach version,$(MATRIX),.venv-$(version)/.installed-test)
	@for version in $(MATRIX); do \
	  echo "== Python $$version"; start=$$(date +%s); \
	  $(call pytest,.venv-$$version/bin/python,-q -n 2 --dist loadfile $(MATRIX_TESTS)) || exit 1; \
	  echo "== Python $$version: passed in $$(( $$(date +%s) - start )) s"; \
	done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict s3store examples

terraform-check:
	bash terraform/check.sh

demo: $(LOCAL_STAMP)
	$(BIN)/s3store demo

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(LOCALSTACK_VENV) .venv-3.* .venv-checkov .pytest_cache .mypy_cache .ruff_cache .hypothesis dist build
