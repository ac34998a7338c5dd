# smartlondon: the two commands of the README's Quick start, and the steps they are made of.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ASSETS := src/smartlondon/web/static/vendor/app.css
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test install assets db serve bench clean

demo: install assets ## Set up everything, load the demo data and serve on http://127.0.0.1:8000
	$(BIN)/smartlondon db upgrade
	$(BIN)/smartlondon demo
	SMARTLONDON_DEMO_FLEET=1 SMARTLONDON_NOWCAST=1 $(BIN)/smartlondon serve --host $(HOST) --port $(PORT)

# `make test`: the MQTT broker's tests first, serially (its topics are fixed), then the rest on
# TEST_WORKERS pytest-xdist workers, whole files per worker (each worker has its own PostgreSQL
# database). TEST_JUNIT=var/x writes var/x-mqtt.xml and var/x-rest.xml. Both passes always run.
TEST_WORKERS ?= 2
TEST_JUNIT ?=

test: install assets ## Run the full test suite (SQLite; PostgreSQL too when SMARTLONDON_TEST_DATABASE_URL is set)
	status=0; \
	$(BIN)/python -m pytest -m mqtt $(if $(TEST_JUNIT),--junitxml=$(TEST_JUNIT)-mqtt.xml) $(PYTEST_ARGS) \
	  || [ $$? -eq 5 ] || status=1; \
	$(BIN)/python -m pytest -m "not mqtt" -n $(TEST_WORKERS) --dist loadfile \
	  $(if $(TEST_JUNIT),--junitxml=$(TEST_JUNIT)-rest.xml) $(PYTEST_ARGS) || status=1; \
	exit $$status

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

node_modules/.package-lock.json: package-lock.json package.json
	npm ci --no-audit --no-fund --loglevel=error

assets: $(ASSETS)

$(ASSETS): node_modules/.package-lock.json src/smartlondon/web/scss/app.scss src/smartlondon/web/assets.py | install
	$(BIN)/python -m smartlondon.web.assets

lock: ## Re-resolve the locked dependencies after changing pyproject.toml
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

bench: install ## Run the search benchmark (slow: builds 100,000 datasets)
	$(BIN)/python benchmarks/search.py

clean:
	rm -rf var node_modules src/smartlondon/web/static/vendor $(VENV)
