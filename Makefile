# Self-documenting Makefile: `make` (or `make help`) lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_DATA ?= data/demo
DEMO_USERS ?= 20000

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast acceptance lint format mlflow-ui bench clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package (editable) with dev extras

demo: install ## Simulate a product, then train, compare with rules and score, end to end
	MLFLOW_DISABLE_TELEMETRY=true $(BIN)/propensity demo --out $(DEMO_DATA) --users $(DEMO_USERS)

test: install ## Run the whole test suite (what CI runs)
	sh scripts/ensure-chromium.sh
	PROPENSITY_TEST_PG_DSN="$$(sh scripts/ensure-postgres.sh | tail -n 1)" \
		MLFLOW_DISABLE_TELEMETRY=true $(BIN)/python -m pytest -q -m "not acceptance" -n 2 --dist loadfile

test-fast: install ## Run the tests, skipping slow and Spark ones
	MLFLOW_DISABLE_TELEMETRY=true $(BIN)/python -m pytest -q -m "not slow and not spark"

acceptance: install ## Run the extra acceptance worlds (tens of minutes; not part of make test)
	MLFLOW_DISABLE_TELEMETRY=true $(BIN)/python -m pytest -q -m acceptance

lint: install ## Lint with ruff
	$(BIN)/ruff check propensity tests benchmarks
	$(BIN)/ruff format --check propensity tests benchmarks

format: install ## Format with ruff
	$(BIN)/ruff check --fix propensity tests benchmarks
	$(BIN)/ruff format propensity tests benchmarks

mlflow-ui: install ## Open the MLflow UI on the local tracking store (http://127.0.0.1:5000)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

bench: install ## Run every benchmark in benchmarks/ (minutes; prints ratios against baselines)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: ## Remove outputs, demo data and the local tracking store (keeps .venv)
	rm -rf outputs mlruns mlflow.db $(DEMO_DATA)
