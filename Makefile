# fraudops — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
# uv from PATH when present, else bootstrapped with pip into .uv/ (git-ignored)
UV := $(shell command -v uv 2>/dev/null || echo .uv/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# compile the packages' bytecode once at set-up (25 s): every later process (DVC stages, servers, flows)
# starts faster, also where PYTHONDONTWRITEBYTECODE keeps Python from caching it (the image does the same)
export UV_COMPILE_BYTECODE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
# Material for MkDocs prints an end-of-life banner on every build that reads like a warning
export NO_MKDOCS_2_WARNING := 1
export OMP_NUM_THREADS := 1
# OpenMP threads that spin while they wait stall a fit when the cores are shared (45 s instead of 5)
export OMP_WAIT_POLICY := PASSIVE

.PHONY: help setup demo test lint audit docker-check bench bench-memcap bench-growth bench-replicas nginx bench-compare faults wrk serve schedule worker mlflow-ui prefect-ui clean docs browser screenshots check-exercise grade vendor-mermaid

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.uv/bin/uv:
	@echo "uv not found: installing uv $(UV_VERSION) into .uv/ with pip"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target .uv "uv==$(UV_VERSION)"

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	@echo "creating $(VENV) from uv.lock (uv sync --frozen)..."
	@$(UV) sync --frozen --quiet --python $(PYTHON)
	@echo "$(VENV) ready"
	@touch $@

setup: $(VENV)/.installed ## Create .venv from the lock file (uv; bootstrapped with pip when absent)

demo: setup ## Run the whole loop offline: simulate, ingest, train, serve, monitor, retrain, promote
	$(BIN)/fraudops demo

test: setup browser ## Run the full test suite (installs chromium first: the course site's page test needs it)
	$(BIN)/pytest

lint: setup ## Run exactly what CI lints with: ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# options of the audit, e.g. `make audit AUDIT_ARGS="--service osv"` (docs/dependencies.md)
AUDIT_ARGS ?=
audit: setup ## Check uv.lock for known vulnerabilities (pip-audit --strict); exit 1 also when it cannot check
	$(BIN)/python -m fraudops.audit --uv "$(UV)" $(AUDIT_ARGS)

# options of the serving benchmark, e.g. `make bench SERVING_ARGS="--seconds 5 --rounds 1"`
SERVING_ARGS ?=
bench: setup wrk ## Run the benchmarks and print their figures (see docs/benchmarks.md)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.quality
	$(BIN)/python -m benchmarks.monitoring_speed
	$(BIN)/python -m benchmarks.monitoring
	$(BIN)/python -m benchmarks.predlog
	$(BIN)/python -m benchmarks.serving $(SERVING_ARGS)
	$(BIN)/python -m benchmarks.burst

# options of the growth benchmark, e.g. `make bench-growth GROWTH_ARGS="--scales 0.25,1"` (10x: about 3 GB)
GROWTH_ARGS ?=
bench-growth: setup ## Simulate, features, train at 0.25/1/4/10x book scale, each in a fresh process: JSON + plot in docs/images
	$(BIN)/python -m benchmarks.growth $(GROWTH_ARGS)

# options of the memory-cap proof, e.g. `make bench-memcap MEMCAP_ARGS="--cap-gb 2.5 --reuse-reference"`
MEMCAP_ARGS ?=
bench-memcap: setup ## 10x book scale under a 3 GiB memory cgroup: one process is killed, Dask finishes, same table (root; ~10 min)
	$(BIN)/python -m benchmarks.memcap $(MEMCAP_ARGS)

# the commit the serving figures are compared with, e.g. `make bench-compare BASE=263e51c`
BASE ?= 263e51c
bench-compare: setup wrk ## Serving figures of BASE and of this tree in one run, side by side (about 15 minutes)
	$(BIN)/python -m benchmarks.serving_compare $(BASE) $(SERVING_ARGS)

faults: setup ## SIGKILL, SIGTERM and a full disk under load: what the prediction log loses (docs/faults.md; mount needs root)
	$(BIN)/python -m benchmarks.faults

# one replica in-process, one on Redis, two on Redis behind nginx: one run, alternating (docs/benchmarks.md)
bench-replicas: setup wrk nginx ## Requests/s and p99: the API with its state in-process, on Redis, two replicas on Redis behind nginx
	$(BIN)/python -m benchmarks.serving --against redis --no-swap $(SERVING_ARGS)

nginx:
	@command -v nginx >/dev/null 2>&1 || { echo "nginx not found: installing it with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; }

wrk:
	@command -v wrk >/dev/null 2>&1 || { echo "wrk not found: installing it with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }

serve: setup ## Serve the champion model on 127.0.0.1:8000
	$(BIN)/fraudops serve

schedule: setup ## Serve the flows with Prefect until Ctrl-C: monitoring on FRAUDOPS_MONITOR_CRON, training on demand
	$(BIN)/fraudops schedule

worker: setup ## Run the flows on a Prefect work pool: create the pool, deploy prefect.yaml, start a worker (needs PREFECT_API_URL)
	PATH="$(CURDIR)/$(BIN):$$PATH" sh deploy/prefect/worker.sh

# the store locations come from the project's settings (core/settings.py), not from here
SETTING = $(BIN)/python -c "from core.settings import get_settings; print(get_settings().$(1))"

mlflow-ui: setup ## Open the MLflow UI on the project's store (http://127.0.0.1:5000)
	$(BIN)/mlflow ui --backend-store-uri "$$($(call SETTING,tracking_uri))" --host 127.0.0.1 --port 5000

prefect-ui: setup ## Open the Prefect UI on the project's flow runs (http://127.0.0.1:4200)
	PREFECT_HOME="$$($(call SETTING,prefect_home))" PREFECT_SERVER_ANALYTICS_ENABLED=false \
		$(BIN)/prefect server start --host 127.0.0.1

docs: setup ## Serve the course site on http://127.0.0.1:8001 (the API owns 8000)
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

# Debian's chromium drives the page tests and the screenshots (Playwright's own download needs the internet)
browser: setup ## Install Debian's chromium when it is missing (apt-get as root; otherwise says how)
	@if $(BIN)/python -c "import sys; from fraudops.browser import chromium_path; sys.exit(chromium_path() is None)"; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "chromium not found: installing Debian's chromium with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "chromium not found: install it (Debian/Ubuntu: sudo apt-get install chromium)" \
			"or point FRAUDOPS_CHROMIUM at a chromium binary; the page test skips without it"; \
	fi

# the site serves its own mermaid (no CDN): refresh it with `make vendor-mermaid MERMAID_VERSION=x.y.z`
MERMAID_VERSION ?= 11.17.2
vendor-mermaid: ## Refresh docs/assets/javascripts/mermaid.min.js from the npm registry (MERMAID_VERSION)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		(cd "$$tmp" && npm pack --silent mermaid@$(MERMAID_VERSION) >/dev/null && \
		 tar xzf mermaid-$(MERMAID_VERSION).tgz package/dist/mermaid.min.js) && \
		cp "$$tmp/package/dist/mermaid.min.js" docs/assets/javascripts/mermaid.min.js && \
		sed -i 's/^Version: .*/Version: $(MERMAID_VERSION)/' docs/assets/javascripts/README.md && \
		echo "docs/assets/javascripts/mermaid.min.js is mermaid $(MERMAID_VERSION)"

clean: ## Remove generated data, stores and reports (keeps .venv)
	rm -rf stores reports demo data/raw data/labels data/validated data/features data/quarantine data/model

# the workshop's exercises (exercises/, docs/workshop.md), e.g. `make check-exercise N=3`
N ?=
.PHONY: exercises-proof
check-exercise: setup ## Check a workshop exercise on this working tree: make check-exercise N=3
	@$(BIN)/python exercises/run.py $(N)

exercises-proof: setup ## Prove each exercise's check: fails untouched and with wrong.patch, passes with reference.patch
	FRAUDOPS_EXERCISE_PROOFS=1 $(BIN)/pytest tests/exercises -q

# options of the grade, e.g. `make grade GRADE_ARGS=--quick` (tests/unit instead of the whole suite)
GRADE_ARGS ?=
grade: setup ## The take-home's objective checks as one table (TAKE_HOME.md); exit 1 when one fails
	$(BIN)/python -m fraudops.grade $(GRADE_ARGS)

# the pictures of docs/images: a demo in a temporary clone of the committed tree (never this folder's data
# or stores), the MLflow and Prefect UIs on its stores, shot with chromium; e.g. SCREENSHOTS_ARGS="--keep"
SCREENSHOTS_ARGS ?=
screenshots: setup browser ## Run the demo in a temporary clone and shoot MLflow, Prefect, Evidently into docs/images
	$(BIN)/python -m fraudops.screenshots $(SCREENSHOTS_ARGS)

# CI for the model: `dvc repro` on a small simulated world in a temporary clone of the committed tree (never
# this folder's data/ or stores/), `dvc metrics diff` against fraudops/model_check_baseline.json
# (docs/course/09-cicd.md); `make model-check UPDATE=1` records the metrics measured as the new baseline
UPDATE ?=
.PHONY: model-check lint-workflows
model-check: setup ## The model's CI: dvc repro on a small world, metrics vs the baseline; exit 1 on a drop past tolerance
	$(BIN)/python -m fraudops.model_check $(if $(UPDATE),--update)

lint-workflows: setup ## Check .github/workflows with actionlint (tests/unit/test_workflows.py runs it too)
	$(BIN)/actionlint

# the workshop in Docker (compose.yaml): minutes of its own, so not part of `make test`; options, e.g.
# `make docker-check DOCKER_CHECK_ARGS="--stand-ins --shots docs/images"` (deploy/docker_check.py)
docker-check: setup ## Build the images, run `docker compose up` (the whole loop), check its end state, down -v
	$(BIN)/python deploy/docker_check.py $(DOCKER_CHECK_ARGS)
