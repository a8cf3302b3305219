# Two commands do all the set-up on a fresh machine:
#   make dev   - the whole system on the embedded default (own PostgreSQL, feed simulator, dagster dev)
#   make test  - the test suite against a real PostgreSQL it starts itself
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install dev test mutmut bench lint stop clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

dev: install
	$(BIN)/otf dev

test: install
	@status=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/python -m otf_dagster_tests.stop_server; exit $$status

# Mutation testing: mutmut over the Task Manager and the fenced transitions (pyproject's
# [tool.mutmut]; `mutmut results` lists survivors), then the claim/transition SQL mutants
# (otf_dagster_tests/sql_mutations.py), whose survivors make the target fail.
mutmut: install
	$(BIN)/pip install -q 'mutmut==3.8.1'
	@status=0; $(BIN)/mutmut run || status=$$?; $(BIN)/mutmut results || status=$$?; \
	OTF_STATE_DIR=mutants/.otf $(BIN)/python -m otf_dagster_tests.stop_server; \
	$(BIN)/python -m otf_dagster_tests.sql_mutations || status=$$?; exit $$status

bench: install
	$(BIN)/python bench/run.py

lint: install
	$(BIN)/ruff check otf_dagster otf_dagster_tests bench

stop: install
	$(BIN)/otf db stop

clean: stop
	rm -rf .otf
