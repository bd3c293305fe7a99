# The two Quick-start commands: `make serve` and `make test`. Both build .venv themselves,
# from uv.lock: every version, direct and transitive, pinned with its hashes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# uv, pinned by hash, in a folder of its own (uv sync would remove it from .venv)
UV_HOME := .uv
UV := $(UV_HOME)/bin/uv
# uv uses the interpreter that is here; it never downloads a Python build
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Debian's Chromium, which Playwright drives in the dashboard's browser test (as root in CI)
CHROMIUM := /usr/bin/chromium
# Debian's Prometheus Alertmanager, which the alerts gate's end-to-end test runs on loopback
ALERTMANAGER := /usr/bin/prometheus-alertmanager

.PHONY: serve test lint reliability upgrade soak

$(UV): scripts/uv-requirements.txt
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --require-hashes --no-deps -r scripts/uv-requirements.txt
	touch $(UV)

# --locked: a lock that disagrees with pyproject.toml is an error, never rewritten here
$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --all-extras --python $(PYTHON) --quiet
	touch $(STAMP)

serve: $(STAMP)
	CASCADE_CONFIG=$${CASCADE_CONFIG:-examples/demo.toml} exec $(BIN)/cascade serve

lint: $(STAMP)
	$(UV) lock --check --python $(PYTHON)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app
	$(BIN)/lint-imports
	$(BIN)/python scripts/import_cycles.py

$(CHROMIUM):
	$$([ "$$(id -u)" = 0 ] || echo sudo) sh -c 'apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core'

$(ALERTMANAGER):
	$$([ "$$(id -u)" = 0 ] || echo sudo) sh -c 'apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager'

test: lint $(CHROMIUM) $(ALERTMANAGER)
	$(BIN)/pytest

# The reliability suite on its own, its figures written to RELIABILITY.md (it runs in `make test` too)
reliability: $(STAMP)
	CASCADE_FLOOD_DELIVERIES=$${CASCADE_FLOOD_DELIVERIES:-100000} $(BIN)/python scripts/reliability.py

# The deterministic simulation (tests/simulation) over as many seeds as asked, one process a
# CPU, with its own Valkey; prints seeds and steps simulated, faults by kind, promotions,
# invariant violations and convergence p50/p99 in virtual time, and writes them to
# RELIABILITY.md's soak section. FIRST=N starts at seed N (a soak taken up where one stopped).
SEEDS ?= 100000
FIRST ?= 0
soak: $(STAMP)
	$(BIN)/python -m tests.simulation.run --seeds $(SEEDS) --first-seed $(FIRST) --keep-going \
		--record RELIABILITY.md

# The benchmarks (about 12 minutes; not part of `make test`), their figures written to
# BENCHMARKS.md. Installs Debian's wrk when missing (py-spy, the `bench` extra, is in .venv).
WRK := /usr/bin/wrk

$(WRK):
	$$([ "$$(id -u)" = 0 ] || echo sudo) sh -c 'apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk'

.PHONY: bench
bench: $(STAMP) $(WRK)
	$(BIN)/python -m bench

# Refresh uv.lock (and uv's own pin) to the newest versions pyproject.toml allows, rebuild
# .venv from it and run the whole suite: commit the new lock only if this ends green.
upgrade: $(UV)
	$(UV) lock --upgrade --python $(PYTHON)
	echo "uv" | $(UV) pip compile --generate-hashes --no-header --python $(PYTHON) - \
		| { echo "# uv itself, pinned by hash: the Makefile installs it into .uv/ with pip (make upgrade refreshes it)."; cat; } \
		> scripts/uv-requirements.txt.new && mv scripts/uv-requirements.txt.new scripts/uv-requirements.txt
	$(MAKE) test
