# Two targets make the quick start: `make pipeline` (the main job) and `make test` (the test suite).
# Both create the virtual environment on first use from the pinned lock file.
VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: pipeline test test-fast lint compile-pipeline clean-data

$(STAMP): pyproject.toml requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements/lock.txt -e ".[dev]"
	touch $(STAMP)

# The whole pipeline on the embedded default data, on this machine, with DVC.
pipeline: $(STAMP)
	PATH="$(BIN):$$PATH" CXRPRIV_PIPELINE_RUN="dvc-$$(date -u +%Y%m%dT%H%M%SZ)" $(BIN)/dvc repro
	@echo "Done. Metrics: metrics/*.json ('.venv/bin/dvc metrics show'); plots: plots/; runs:" \
	      "'.venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db'; the release: data/release/"
	@$(BIN)/python -m cxrpriv.evaluate.decision data/evaluate

test: $(STAMP) lint
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

compile-pipeline: $(STAMP)
	$(BIN)/python -m pipelines.cxr_privacy --profile default
	$(BIN)/python -m pipelines.cxr_privacy --profile paper

clean-data:
	rm -rf data metrics plots mlflow.db mlruns
