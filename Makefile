# Two commands matter: `make run` and `make test`. Both build or refresh .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean venv serve check-examples

venv: $(STAMP)

# Refresh the environment whenever the declared dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The PostgreSQL wire protocol listens on 5433; its governed catalogue uses the local PostgreSQL
# when one answers (MESHGOV_PG_CATALOG_DSN), else introspection is refused and queries still work.
PG_CATALOG_DSN ?= postgresql://postgres@127.0.0.1:5432/postgres
run: $(STAMP)
	MESHGOV_PG_CATALOG_DSN=$${MESHGOV_PG_CATALOG_DSN-$(PG_CATALOG_DSN)} \
	$(BIN)/meshgov serve --catalog examples/mesh --host 127.0.0.1 --port 8181 --pg-port 5433

check-examples: $(STAMP)
	$(BIN)/meshgov check examples/mesh --policies policies

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy src

unit: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/check_bench.py
	$(BIN)/python bench/graph_bench.py
	$(BIN)/python bench/rewrite_bench.py
	$(BIN)/python bench/service_bench.py
	$(BIN)/python bench/console_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
