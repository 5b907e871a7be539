# trustlive: `make demo` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VENDOR := src/trustlive/web/static/vendor
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?= -n 2

.PHONY: help setup assets browser migrate seed demo serve test lint format i18n lock clean

help:
	@echo "make demo    set up, migrate, seed the demo world and serve it on http://$(HOST):$(PORT)"
	@echo "make test    set up, lint, run the whole suite (SQLite; PostgreSQL/Redis when reachable)"
	@echo "make lint | format | i18n | lock | clean"

$(STAMP): requirements.lock pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

setup: $(STAMP) assets

# Front-end libraries come from the npm lock file and are served locally (no CDN).
assets: $(VENDOR)/.installed

$(VENDOR)/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/chart.umd.min.js
	touch $@

# Browser tests drive Debian's Chromium; install it when we can (root with apt), never download one.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian chromium for the browser tests"; \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)); \
	else echo "note: /usr/bin/chromium missing; browser tests will be skipped"; fi

migrate: setup
	$(BIN)/trustlive migrate

seed: migrate
	$(BIN)/trustlive seed

demo: setup
	$(BIN)/trustlive demo --host $(HOST) --port $(PORT)

serve: setup
	$(BIN)/trustlive serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench migrations
	$(BIN)/ruff format src tests bench migrations

test: setup browser lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Re-extract UI strings and merge them into the Chinese catalog (then translate the new ones).
i18n: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -o src/trustlive/web/locale/messages.pot --no-location --sort-output src
	$(BIN)/pybabel update -i src/trustlive/web/locale/messages.pot -d src/trustlive/web/locale -l zh_Hans --no-fuzzy-matching --omit-header --ignore-obsolete

# Re-pin Python dependencies (with hashes) after editing pyproject.toml.
lock: $(STAMP)
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .pytest_cache .ruff_cache
