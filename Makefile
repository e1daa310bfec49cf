# audit-x: the Pulumi program of the audit_x Rails app. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STACK  ?= staging
# InfluxData's Flux parser and type checker (npm, WebAssembly): the tests check every rendered query with it.
FLUX_CHECK := harness/flux/node_modules/.installed

.PHONY: help venv system-packages plan policy test lint format preview up config-reference engine

help:
	@echo "make venv                 create .venv with the pinned requirements"
	@echo "make plan [STACK=prod]    what a stack would deploy (offline: no cloud, no CLI)"
	@echo "make policy [STACK=prod]  the policy pack over a stack (offline)"
	@echo "make test                 unit tests under mocks, probes against local servers, and the Docker rig (root)"
	@echo "make engine               build the real Pulumi engine's binaries (Go; cached), print their directory"
	@echo "make lint                 ruff and pyright"
	@echo "make preview|up STACK=..  the real thing, with the Pulumi CLI and credentials"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

$(FLUX_CHECK): harness/flux/package.json harness/flux/package-lock.json | system-packages
	@command -v npm >/dev/null || { echo "npm is needed for the Flux checker: apt-get install nodejs npm"; exit 1; }
	npm ci --prefix harness/flux --no-audit --no-fund --silent
	touch $@

plan: venv
	$(BIN)/python -m ops.plan $(STACK)

policy: venv
	$(BIN)/python -m ops.policy $(STACK)

# The Debian packages the tests need (PostgreSQL, redis-server, Node.js, shellcheck): installed
# as root, otherwise named on one line.
system-packages:
	@sh harness/system_packages.sh

# The real Pulumi engine's binaries (the CLI, the Python language host, the docker and random
# providers, a stand-in for aws), built from Go modules once per machine and cached by content:
# harness/pulumi_engine/build.py. Building them first keeps the test workers from racing to.
engine: venv
	$(BIN)/python -m harness.pulumi_engine.build --time

# The tests alone need the Flux checker (Node.js) and the engine's binaries; planning and linting do not.
test: venv system-packages $(FLUX_CHECK) engine
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

config-reference: venv
	$(BIN)/python -m ops.config_reference

preview: venv
	@command -v pulumi >/dev/null || { echo "the Pulumi CLI is not installed: see README.md, 'Deploying for real'"; exit 1; }
	pulumi preview --stack $(STACK) --diff

up: venv
	@command -v pulumi >/dev/null || { echo "the Pulumi CLI is not installed: see README.md, 'Deploying for real'"; exit 1; }
	pulumi up --stack $(STACK)
