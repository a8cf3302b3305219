# Two commands do all the set-up on a fresh machine:
#   make dev   - the whole system on the embedded default (own PostgreSQL, feed simulator, Dagster)
#                options go through ARGS: make dev ARGS="--games 8 --speed 60"
#   make test  - the test suite against a real PostgreSQL it starts itself
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install dev test bench lint stop clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

dev: install
	$(BIN)/otf dev $(ARGS)

test: install
	@status=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/python -m otf_dagster_tests.stop_server; exit $$status

bench: install
	$(BIN)/python bench/run.py

lint: install
	$(BIN)/ruff check otf_dagster otf_dagster_tests bench

stop: install
	$(BIN)/otf db stop

clean: stop
	rm -rf .otf
