# Two commands do all the set-up on a fresh machine:
#   make dev   - the whole system on the embedded default (own PostgreSQL, feed simulator, Dagster)
#                options go through ARGS: make dev ARGS="--games 8 --speed 60"
#   make test  - the test suite against a real PostgreSQL it starts itself
#   make test-timescale - the same suite on TimescaleDB: the build in $(OTF_TIMESCALEDB)
#                (default ../shared/timescaledb beside the checkout) installed into the
#                venv's PostgreSQL and preloaded in a test server folder of its own
#   make schema - write sql/schema.sql (and sql/schema.timescaledb.sql when the TimescaleDB
#                build is there): the schema as the migrations leave it; run after a migration
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

# The TimescaleDB build folder (with install.sh), relative paths from the project root.
OTF_TIMESCALEDB ?= ../shared/timescaledb
TIMESCALEDB_DIR := $(abspath $(OTF_TIMESCALEDB))

.PHONY: install dev test test-timescale schema mutmut bench lint stop clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

dev: install
	$(BIN)/otf dev $(ARGS)

# `make test` is the plain pass whatever the environment says; OTF_TEST_ADMIN_URL still points it
# at any server (a TimescaleDB one included).
test: install
	@status=0; OTF_TEST_TIMESCALEDB= $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	OTF_TEST_TIMESCALEDB= $(BIN)/python -m otf_dagster_tests.stop_server; exit $$status

test-timescale: install
	@test -x "$(TIMESCALEDB_DIR)/install.sh" || { echo "make test-timescale: no TimescaleDB build at $(TIMESCALEDB_DIR) (no install.sh there); set OTF_TIMESCALEDB to the build folder" >&2; exit 1; }
	@status=0; OTF_TEST_TIMESCALEDB="$(TIMESCALEDB_DIR)" $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	OTF_TEST_TIMESCALEDB="$(TIMESCALEDB_DIR)" $(BIN)/python -m otf_dagster_tests.stop_server; exit $$status

# The schema as the migrations leave it, dumped from a fresh database on the test servers
# (otf_dagster_tests/schema_dump.py); test_schema_file.py fails until this has been run.
schema: install
	@status=0; OTF_TEST_TIMESCALEDB= $(BIN)/python -m otf_dagster_tests.schema_dump || status=$$?; \
	OTF_TEST_TIMESCALEDB= $(BIN)/python -m otf_dagster_tests.stop_server; \
	if [ -x "$(TIMESCALEDB_DIR)/install.sh" ]; then \
	  OTF_TEST_TIMESCALEDB="$(TIMESCALEDB_DIR)" $(BIN)/python -m otf_dagster_tests.schema_dump || status=$$?; \
	  OTF_TEST_TIMESCALEDB="$(TIMESCALEDB_DIR)" $(BIN)/python -m otf_dagster_tests.stop_server; \
	else echo "make schema: no TimescaleDB build at $(TIMESCALEDB_DIR); sql/schema.timescaledb.sql not checked (set OTF_TIMESCALEDB)" >&2; fi; \
	exit $$status

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
