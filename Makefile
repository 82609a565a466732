# CSP alert triage: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The dashboard's browser tests audit each view with axe-core, from the npm registry (never shipped).
NODE_TOOLS := tests/dashboard/node_modules/.installed

# Where the infrastructure is: the local stack by default; set these to use your own.
export KAFKA_BOOTSTRAP_SERVERS ?= 127.0.0.1:9092
export DATABASE_URL ?= postgresql://csp:csp@127.0.0.1:5432/csp_triage
export REDIS_URL ?= redis://127.0.0.1:6379/0
# Test workers (pytest-xdist): most tests wait on a broker, a timer or a process, so two runs side by
# side (each its own database, topics and Redis database) take far less than one after the other;
# a file stays on one worker. 0: one process.
TEST_WORKERS ?= 2

.PHONY: help install infra-up infra-down run stop observe test test-unit bench lint asyncapi clean-data

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "==> creating the virtual environment and installing the project"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

$(NODE_TOOLS): tests/dashboard/package.json tests/dashboard/package-lock.json
	@echo "==> installing the dashboard tests' tools from the npm registry (axe-core)"
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 18 or newer (Debian: apt-get install npm)"; exit 1; }
	@npm ci --prefix tests/dashboard --no-audit --no-fund --loglevel=error
	@touch $(NODE_TOOLS)

install: $(STAMP) ## create .venv and install the project with its test tools

infra-up: install ## start Kafka, PostgreSQL, Redis (each only if nothing listens), migrate, create topics
	@bash infra/scripts/infra.sh up

infra-down: ## stop the infrastructure this project started (and nothing else)
	@bash infra/scripts/infra.sh down

run: infra-up ## run the whole system in the foreground; Ctrl-C stops everything it started
	@$(PY) infra/scripts/run_services.py --stop-infra-on-exit

stop: ## stop the services and the infrastructure started by `make run`
	@$(PY) infra/scripts/run_services.py --stop 2>/dev/null || true
	@bash infra/scripts/infra.sh down

observe: ## run Prometheus (Debian's package) on the local services with the alert rules; Ctrl-C stops it
	@bash infra/scripts/observe.sh run

test: infra-up $(NODE_TOOLS) ## run every test against the real Kafka, PostgreSQL and Redis (and Debian's chromium)
	@bash infra/scripts/infra.sh browser
	@bash infra/scripts/observe.sh install
	@$(PY) -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

test-unit: install ## only the tests that need no infrastructure
	@$(PY) -m pytest -m "not integration and not e2e" $(PYTEST_ARGS)

bench: infra-up ## run the benchmarks, each beside its baseline in the same run
	@bash infra/scripts/bench_tools.sh
	@$(PY) -m bench $(BENCH_ARGS)

lint: install ## ruff, then the import contracts (a service imports no other; shared/ imports none)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/lint-imports

asyncapi: install ## write each service's AsyncAPI document (its topics and events) to docs/asyncapi/
	@$(PY) -m tools.asyncapi

clean-data: stop ## stop, then delete local data (Kafka log, PostgreSQL cluster, Redis)
	@rm -rf .run
