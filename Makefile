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
# (MESHGOV_PG_CATALOG_DSN), else introspection is refused and queries still work. With NATS on
# 127.0.0.1:4222 the example order events are generated and relayed; without it the generator
# says so and the rest is served.
PG_CATALOG_DSN ?= postgresql://postgres@127.0.0.1:5432/postgres
NATS_URL ?= nats://127.0.0.1:4222
run: $(STAMP)
	@$(BIN)/python examples/events_generator.py --url $(NATS_URL) --rate 2 --bad-every 25 & \
	  generator=$$!; trap 'kill $$generator 2>/dev/null' EXIT INT TERM; \
	  MESHGOV_PG_CATALOG_DSN=$${MESHGOV_PG_CATALOG_DSN-$(PG_CATALOG_DSN)} \
	  $(BIN)/meshgov serve --catalog examples/mesh --host 127.0.0.1 --port 8181 --pg-port 5433 \
	  --nats $(NATS_URL)

check-examples: $(STAMP)
	$(BIN)/meshgov check examples/mesh --policies policies

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy src

# Spark tests share one local Spark session (a JVM, local[2]) per run, so they run in a second
# pass without xdist; they skip with a reason when pyspark or Java is missing, unless
# MESHGOV_REQUIRE_SPARK=1 (as in .ci/run). The pass prints its duration.
unit: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow and not spark" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -p no:xdist -m "spark and not slow" --durations=5 $(PYTEST_ARGS)

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/check_bench.py
	$(BIN)/python bench/graph_bench.py
	$(BIN)/python bench/rewrite_bench.py
	$(BIN)/python bench/service_bench.py
	$(BIN)/python bench/export_bench.py
	$(BIN)/python bench/stream_bench.py  # needs NATS (MESHGOV_NATS_URL, default 127.0.0.1:4222)
	$(BIN)/python bench/trino_bench.py
	$(BIN)/python bench/console_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
