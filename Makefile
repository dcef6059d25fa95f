# One-command workflows. `make demo` and `make test` include set-up, so a fresh clone needs nothing else.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ENVS := local dev staging prod
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo test test-fast lint format synth bench clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	$(VENV)/bin/driftline demo

test: setup lint
	$(PY) -m pytest --cov --cov-report=term:skip-covered --durations=15

test-fast: setup
	$(PY) -m pytest -m "not slow and not twin"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app.py infra pipelines driftline functions

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

synth: setup
	@for env in $(ENVS); do \
	  npx cdk synth -c env=$$env -c git_sha=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	    -q -o cdk.out/$$env || exit 1; \
	  echo "synthesized $$env into cdk.out/$$env"; \
	done

bench: setup
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf cdk.out .driftline .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
