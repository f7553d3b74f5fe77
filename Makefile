# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test isolation-long lint bench clean

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

## The portal on embedded defaults (SQLite under ./var, in-process worker).
run: $(STAMP)
	$(BIN)/tenantry serve

## The whole suite. PostgreSQL, Redis and RabbitMQ tests run when their TENANTRY_TEST_*_URL is set.
## Test files run side by side in TEST_WORKERS processes (pytest-xdist): while one test waits on a
## database, broker or worker, another process's test has the CPU, so one more process than cores
## pays. More do not: on a quiet 2-core machine three kept both CPUs about 90 % busy (a quarter of
## it PostgreSQL's) and four 95 %, and both took 8:40 to 9:20. The CPUs are the limit, and the
## heavier contention only made timing-bound tests flakier. The longest files go first
## (tests/conftest.py: LONGEST_FILES), in the order collected, not xdist's own.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

## The isolation property suite's long run: ISOLATION_VISITS visits in all, half on SQLite and half
## on PostgreSQL, across every isolation mode, a quarter of them concurrent; its closing line gives
## the count and the result. Both backends or none: it refuses to run without PostgreSQL.
ISOLATION_VISITS ?= 10000
isolation-long: $(STAMP)
	@test -n "$$TENANTRY_TEST_POSTGRES_URL" || { echo "make isolation-long runs on SQLite and PostgreSQL:" \
		"set TENANTRY_TEST_POSTGRES_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres)" >&2; exit 2; }
	TENANTRY_ISOLATION_VISITS=$(ISOLATION_VISITS) $(BIN)/pytest -q -p no:randomly --timeout=0 tests/web/test_isolation_property.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV)
