# The two commands a newcomer runs: `make demo` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The Dagster instance: .dagster_home/ of the checkout, its dagster.yaml written from the template
# dagster.yaml with absolute storage paths by the first command that needs it.
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: demo demo-real test lint test-deep test-stores setup defs ui clean docs bench bench-attribution bench-e2e bench-plan check-data demo-plan

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

setup: $(VENV)/.installed

## Simulate the default fleet's demo day and run the pipeline on it.
demo: $(VENV)/.installed
	$(VENV)/bin/inferledger demo

## A day built only from the real public samples of tests/data/real/ (Azure trace, Harvard IPMI dumps, FOCUS
## sample, ECB rates), run through the same pipeline into data/real/ (docs/real-data.md).
demo-real: $(VENV)/.installed
	$(VENV)/bin/inferledger demo --real --samples tests/data/real --real-data data/real

## The planner's backtest on a simulated fortnight (docs/planning.md, "Backtest"): DAYS days of the demo
## fleet, PLAN_REQUESTS requests a day (its node count follows fleetsim's provisioning policy: the demo
## day's 6 nodes up to 800,000), request logs zstd-compressed, in data/plan-demo/, backfilled two days at a
## time; the first half trains the plan, the second half scores it.
DAYS ?= 14
PLAN_REQUESTS ?= 400000
PLAN_DEMO := data/plan-demo
PLAN_FIRST := 2026-11-01
demo-plan: $(VENV)/.installed
	$(PY) -m fleetsim --out $(PLAN_DEMO)/raw --date $(PLAN_FIRST) --days $(DAYS) --requests $(PLAN_REQUESTS) \
	  --compress zstd
	$(VENV)/bin/inferledger backfill --from $(PLAN_FIRST) --to $$(date -d "$(PLAN_FIRST) + $$(( $(DAYS) - 1 )) days" +%F) \
	  --parallel 2 --raw $(PLAN_DEMO)/raw --lake $(PLAN_DEMO)/lake --warehouse $(PLAN_DEMO)/warehouse/inferledger.duckdb
	$(VENV)/bin/inferledger plan --raw $(PLAN_DEMO)/raw --lake $(PLAN_DEMO)/lake \
	  --warehouse $(PLAN_DEMO)/warehouse/inferledger.duckdb \
	  --train $(PLAN_FIRST)..$$(date -d "$(PLAN_FIRST) + $$(( $(DAYS) / 2 - 1 )) days" +%F) \
	  --test $$(date -d "$(PLAN_FIRST) + $$(( $(DAYS) / 2 )) days" +%F)..$$(date -d "$(PLAN_FIRST) + $$(( $(DAYS) - 1 )) days" +%F)

## The test suite (unit, real samples, Dagster materializations, definitions check). CI runs exactly this,
## with CI set: Hypothesis then loads its `ci` profile (tests/conftest.py): the same examples on every run
## (derandomized, no example database), each property test at its own budget. Without CI, the `dev`
## profile: the same budgets, random examples, failures replayed from .hypothesis/.
test: lint
	$(PY) -m pytest -n 2 --dist loadfile --durations=15 -m "not azurite"

## The lake on Azure Blob Storage against Azurite (npm install on first use, cached in ~/.cache/inferledger). Not part of `make test`.
test-stores: $(VENV)/.installed
	$(PY) -m pytest -m azurite tests/test_lake_azure.py

## Ruff and the import contract (pyproject.toml; the rooms and what each may import: docs/architecture.md).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check --no-cache .
	$(VENV)/bin/lint-imports --no-cache

## A long local hunt for counterexamples: only the property tests, with Hypothesis's `deep` profile (twenty
## times the examples, random, nice'd; about 15 minutes on two cores). A failure it finds becomes an @example.
## Same as INFERLEDGER_HYPOTHESIS=deep with any pytest command. Not part of `make test`.
test-deep: $(VENV)/.installed
	INFERLEDGER_HYPOTHESIS=deep nice -n 10 $(PY) -m pytest -n 2 --dist loadfile -m hypothesis

## The data-quality gate: every Great Expectations suite on the demo day and the real samples of
## tests/data/real (placed by tests/data/inventory_small.yaml), and the warehouse checks; a readable report,
## data/check-data.json, exit 1 on any error (docs/data-quality.md).
check-data: $(VENV)/.installed
	@test -f data/warehouse/inferledger.duckdb || $(VENV)/bin/inferledger demo
	$(VENV)/bin/inferledger check-data --real tests/data/real --real-inventory tests/data/inventory_small.yaml \
		--json data/check-data.json

## Both benchmarks (bench/README.md); neither is part of `make test`.
bench: bench-attribution bench-e2e

## Time the attribution step at 1, 10 and 30 M requests a day against pandas and Polars references.
bench-attribution: $(VENV)/.installed
	$(PY) bench/bench_attribution.py

## The nightly job end to end (raw JSON Lines -> published warehouse, every check) at 1, 10, 30 and 100 M requests.
bench-e2e: $(VENV)/.installed
	$(PY) bench/bench_e2e.py

## The planner's solve time: 10 and 100 pools x 5 tiers x 10 models x 24 hours (goals 5 s and 60 s).
bench-plan: $(VENV)/.installed
	$(PY) bench/bench_plan.py

## The Dagster UI on the instance the commands record their runs in ($DAGSTER_HOME, created if missing).
ui: $(VENV)/.installed
	$(PY) -m pipelines.instance "$(DAGSTER_HOME)"
	$(VENV)/bin/dg dev

## Validate the Dagster definitions as the UI would load them.
defs: $(VENV)/.installed
	$(PY) -m pipelines.instance "$(DAGSTER_HOME)"
	$(VENV)/bin/dg check defs

## Regenerate docs/data-contracts.md (from transforms/contracts.py, by lake/docs.py) and docs/data-dictionary.md (from the demo warehouse's comments).
docs: $(VENV)/.installed
	$(PY) -m lake.docs
	@test -f data/warehouse/inferledger.duckdb || $(VENV)/bin/inferledger demo
	$(PY) -m warehouse.dictionary data/warehouse/inferledger.duckdb

clean:
	rm -rf data .dagster_home .pytest_cache
