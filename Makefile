# One-command workflows. `make demo` and `make test` include set-up, so a fresh clone needs nothing else.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ENVS := local dev staging prod
# checkov pins its own boto3, so it lives in a virtualenv of its own (requirements-checkov.txt).
CHECKOV_VENV := .venv-checkov
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1
# The set-up steps are independent (two virtualenvs, node_modules, chromium): `make test` builds
# them side by side. Output is not synced per target: that would hold pytest's progress back
# until the whole suite ends (the set-up steps are quiet).
MAKEFLAGS += --jobs=3

.PHONY: setup browser demo test test-fast lint format synth checkov smoke reports bench docs-images clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Headless Chromium (Debian's package) renders the HTML reports in tests/browser and for
# `make docs-images`. Installed only when missing, and only where apt-get may run (root);
# elsewhere the browser tests skip, saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium fonts-dejavu-core >/dev/null; \
	  else \
	    echo "note: no chromium and no root to install it: tests/browser will be skipped"; \
	  fi; }

demo: setup
	$(VENV)/bin/driftline demo

# checkov runs inside pytest (tests/infra/test_checkov.py) over the suite's own synth of every env.
# pytest-xdist: one worker per core (at most 4), a test file never split across workers, so a
# module's twin and a session's synth stay with the tests that share them.
PYTEST_PARALLEL := -n auto --maxprocesses=4 --dist loadfile
test: setup browser lint $(CHECKOV_VENV)/.installed
	$(PY) -m pytest $(PYTEST_PARALLEL) --cov --cov-report=term:skip-covered --durations=15

test-fast: setup
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not slow and not twin"

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

# checkov over every template `make synth` (and the delivery synth) wrote under cdk.out; any
# finding not skipped in .checkov.yaml (each skip with its reason) fails. checkov pins its own
# boto3, so it lives in a virtualenv of its own. `make test` runs the same check over its own
# synth of the four envs (tests/infra/test_checkov.py).
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

checkov: $(CHECKOV_VENV)/.installed
	@test -d cdk.out || { echo "cdk.out is missing: run make synth first" >&2; exit 2; }
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml

# Post-deploy smoke test: `make smoke` starts a fresh twin, deploys local and checks it;
# `make smoke ENV=dev` checks the deployed dev env through the standard AWS chain.
SMOKE_ENV := $(if $(filter command line,$(origin ENV)),$(ENV),local)
smoke: $(VENV)/.installed
	@if [ "$(SMOKE_ENV)" = local ]; then \
	  $(VENV)/bin/driftline smoke --env local --fresh-twin; \
	else \
	  $(VENV)/bin/driftline smoke --env $(SMOKE_ENV); \
	fi

# The data-contract check CI runs: each sample in examples/samples.txt validated against its
# contract, and compared with its baseline when one is listed; JSON/HTML reports in reports/.
SAMPLES := examples/samples.txt
reports: $(VENV)/.installed
	@mkdir -p reports/validation reports/drift; status=0; \
	while read -r file contract baseline; do \
	  case "$$file" in ''|'#'*) continue;; esac; \
	  name=$$(basename "$$file"); name=$${name%%.*}; \
	  echo "validate $$file against $$contract"; \
	  $(VENV)/bin/driftline validate "$$file" --contract "$$contract" --json \
	    > reports/validation/$$name.json || status=1; \
	  if [ -n "$$baseline" ]; then \
	    echo "drift of $$file against $$baseline"; \
	    $(VENV)/bin/driftline drift report --baseline "$$baseline" --current "$$file" --json \
	      --html reports/drift/$$name.html > reports/drift/$$name.json || status=1; \
	  fi; \
	done < $(SAMPLES); exit $$status

bench: setup
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

# The README's screenshots of the drift report and the runs view, rendered by headless Chromium
# from the example dataset (docs/images/*.png). Regenerate them after changing either page.
docs-images: setup browser
	$(PY) docs/make_images.py

clean:
	rm -rf cdk.out reports .driftline .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
