# The two Quick-start commands: `make serve` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian's Chromium, which Playwright drives in the dashboard's browser test (as root in CI)
CHROMIUM := /usr/bin/chromium

.PHONY: serve test lint reliability

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	CASCADE_CONFIG=$${CASCADE_CONFIG:-examples/demo.toml} $(BIN)/cascade serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app
	$(BIN)/lint-imports

$(CHROMIUM):
	$$([ "$$(id -u)" = 0 ] || echo sudo) sh -c 'apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core'

test: lint $(CHROMIUM)
	$(BIN)/pytest

# The reliability suite on its own, its figures written to RELIABILITY.md (it runs in `make test` too)
reliability: $(STAMP)
	CASCADE_FLOOD_DELIVERIES=$${CASCADE_FLOOD_DELIVERIES:-100000} $(BIN)/python scripts/reliability.py

# The benchmarks (about 12 minutes; not part of `make test`), their figures written to
# BENCHMARKS.md. Installs the `bench` extra (py-spy) and Debian's wrk when missing.
BENCH_STAMP := $(VENV)/.bench-installed
WRK := /usr/bin/wrk

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

$(WRK):
	$$([ "$$(id -u)" = 0 ] || echo sudo) sh -c 'apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk'

.PHONY: bench
bench: $(BENCH_STAMP) $(WRK)
	$(BIN)/python -m bench
