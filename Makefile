# copier-mlops: the template's own tasks. `make help` lists them.
# Two commands set everything up on a fresh Linux machine with Python and make:
#   make demo   render a project with the defaults and run its golden path
#   make test   the template's tests: every fast one, and one end-to-end smoke
# `make test-all` runs everything, each end-to-end scenario included (what CI runs).
.DEFAULT_GOAL := help
SHELL := /bin/bash

# uv: the one on PATH, else a private copy installed into .tools/ on first use.
UV ?= $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen
# One pytest worker per core; tests that share a costly fixture run on one worker
# (tests/conftest.py, WORKER_GROUPS), and trained projects are made once for all workers.
PYTEST := $(RUN) pytest -n auto
# The benchmarks import the tests' helpers (tests/helpers/).
BENCH := PYTHONPATH=tests $(RUN) python
DEMO_DIR := .demo/ml-project
PYTHON_CHOICES := 3.12 3.11 3.13

export UV
export UV_PYTHON_DOWNLOADS := never
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
# Tests start many Python processes; bytecode caches spare each one recompiling.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help
help: ## List the targets with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet uv

.venv: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	@touch .venv

.PHONY: dev
dev: .venv ## Create the template's development environment

.PHONY: test
test: dev ## Run the fast tests and one end-to-end smoke (render, setup, pipeline, test, serve)
	$(PYTEST) -m "not e2e or smoke"

.PHONY: test-all
test-all: dev ## Run every test, each end-to-end scenario included (what CI runs; tens of minutes)
	$(PYTEST)

.PHONY: test-fast
test-fast: dev ## Run only the fast tests (rendering, questions, docs), no end-to-end
	$(PYTEST) -m "not e2e"

.PHONY: demo
demo: dev ## Render a project with the defaults into .demo/ and run its golden path
	rm -rf $(DEMO_DIR)
	@version=$$(for v in $(PYTHON_CHOICES); do $(UV) python find $$v >/dev/null 2>&1 && echo $$v && break; done); \
	test -n "$$version" || { echo "none of Python $(PYTHON_CHOICES) is installed"; exit 1; }; \
	echo "$(RUN) copier copy --trust --defaults --vcs-ref HEAD --data python_version=$$version . $(DEMO_DIR)"; \
	$(RUN) copier copy --trust --defaults --vcs-ref HEAD --data python_version=$$version . $(DEMO_DIR)
	$(MAKE) -C $(DEMO_DIR) setup pipeline test plots
	@echo
	@echo "Demo project: $(DEMO_DIR)"
	@echo "  model card   $(DEMO_DIR)/reports/model_card.html (open it first; works offline)"
	@echo "  model        $(DEMO_DIR)/models/model.joblib (registered in MLflow as champion)"
	@echo "  metrics      $(DEMO_DIR)/reports/metrics.json, per slice: reports/slice_metrics.json"
	@echo "  promotion    $(DEMO_DIR)/reports/promotion.json"
	@echo "  plots        $(DEMO_DIR)/reports/plots.html"
	@echo "  MLflow runs  $(DEMO_DIR)/mlflow.db: cd $(DEMO_DIR) && make mlflow-ui"
	@echo
	@cat $(DEMO_DIR)/reports/metrics.json

.PHONY: bench
bench: bench-startup bench-floors bench-scale bench-dask bench-score bench-families bench-serving ## Run every benchmark; results in benchmarks/results/, tables in the docs
	$(BENCH) benchmarks/report.py

.PHONY: bench-startup
bench-startup: dev ## Time to first prediction, render, pipeline and test times (3 runs; BENCH_BASELINE=0.4.0 compares)
	BENCH_BASELINE="$(BENCH_BASELINE)" $(BENCH) benchmarks/startup.py

.PHONY: bench-score
bench-score: dev ## Batch scoring of 100k and 1M synthetic rows, compiled against scikit-learn: rows/s and peak memory
	$(BENCH) benchmarks/score.py

.PHONY: bench-families
bench-families: dev ## Every conf/model/ family on the shipped and adopted tables: metric, fit and 1-row times (BENCH_TABLES=a,b for some)
	$(BENCH) benchmarks/families.py

.PHONY: bench-render
bench-render: dev ## The render alone against BENCH_BASELINE (default 0.4.0), 20 interleaved pairs
	BENCH_BASELINE="$(BENCH_BASELINE)" $(BENCH) benchmarks/render.py

.PHONY: bench-floors
bench-floors: dev ## Costs under the startup targets: resolution, bytecode compilation, MLflow, BentoML
	$(BENCH) benchmarks/floors.py

.PHONY: bench-template
bench-template: dev ## Time the template's own suite once on a fresh clone, as CI runs it (tens of minutes)
	$(BENCH) benchmarks/template_suite.py
	$(BENCH) benchmarks/report.py

.PHONY: bench-scale
bench-scale: dev ## The pipeline per stage: default model at 100k/1M rows (3 runs), LightGBM at 1M/10M (3 runs, ~45 min in all)
	$(BENCH) benchmarks/scale.py

.PHONY: bench-dask
bench-dask: dev ## LightGBM on two local Dask workers against one machine: holdout metric within the folds' spread
	$(BENCH) benchmarks/dask_training.py

.PHONY: bench-serving
bench-serving: dev ## Benchmark the generated service against a FastAPI baseline (needs wrk)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } || \
		{ echo "wrk is needed: sudo apt-get install wrk"; exit 1; }
	$(BENCH) benchmarks/serving.py

.PHONY: docs
docs: dev ## Build the documentation site into site/ (strict: warnings fail)
	$(RUN) mkdocs build --strict

.PHONY: lint
lint: dev ## Check the template's own code with ruff
	$(RUN) ruff check .
	$(RUN) ruff format --check .

.PHONY: release
release: ## Tag a release: make release VERSION=X.Y.Z (needs its CHANGELOG.md entry and a clean tree)
	@echo "$(VERSION)" | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$$' || { echo "usage: make release VERSION=X.Y.Z"; exit 1; }
	@grep -q "^## $(VERSION) - " CHANGELOG.md || { echo "CHANGELOG.md has no '## $(VERSION) - <date>' entry"; exit 1; }
	@test -z "$$(git status --porcelain)" || { echo "commit or stash your changes first"; exit 1; }
	@! git rev-parse -q --verify "refs/tags/v$(VERSION)" >/dev/null || { echo "v$(VERSION) exists"; exit 1; }
	git tag -a "v$(VERSION)" -m "copier-mlops $(VERSION)"
	@echo "Tagged v$(VERSION). Publish it: git push origin v$(VERSION)"

.PHONY: clean
clean: ## Remove the demo project, the built site and caches
	rm -rf .demo site .pytest_cache .ruff_cache
