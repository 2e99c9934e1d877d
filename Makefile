# clinicall: two commands on a fresh machine.
#   make run   install, migrate, load the demo clinic once, serve (prints the URLs it serves)
#   make test  install with the test extras, ruff, pytest (real PostgreSQL, Redis, Chromium)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Four workers on two cores (the tests also wait on real servers and a browser). --maxschedchunk 1 hands
# each worker one test at a time in the order of tests/conftest.py (longest first): xdist's default first
# hands each worker a quarter of its share as one consecutive block, which put every long test on one worker.
TEST_WORKERS ?= 4

.PHONY: run test test-deploy test-container lint system-deps clean bench fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

system-deps:
	@bash scripts/system-deps.sh test

run: $(STAMP)
	@bash scripts/system-deps.sh run
	@mkdir -p var
	$(BIN)/clinicall migrate
	$(BIN)/clinicall demo --if-empty
	@echo ""
	@$(BIN)/python scripts/print_urls.py
	@echo "  Create your own admin:  $(BIN)/clinicall user add NAME --role admin"
	@echo ""
	CLINICALL_TELEPHONY__DEMO_PBX=$${CLINICALL_TELEPHONY__DEMO_PBX:-true} \
	CLINICALL_HTTP__COOKIE_SECURE=$${CLINICALL_HTTP__COOKIE_SECURE:-false} $(BIN)/clinicall serve

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

test: $(TEST_STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --maxschedchunk 1 --durations=15

# schemathesis over every operation and role, with many more examples than the suite's run
FUZZ_EXAMPLES ?= 60
fuzz: $(TEST_STAMP)
	CLINICALL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:randomly --timeout=3600 \
		tests/clinicall/test_api_contract.py -k schemathesis

# The deployment recipe (deploy/): nginx + TLS in front of two instances on PostgreSQL and Redis.
test-deploy: $(TEST_STAMP)
	@bash scripts/system-deps.sh deploy
	$(BIN)/python -m pytest -q -p no:randomly -p no:cacheprovider deploy/test_deploy.py

# The container recipe (Dockerfile, deploy/docker/compose.yaml) and the systemd units under systemd as PID 1,
# built and run in Docker: minutes, so in neither test nor test-deploy; skips when no Docker daemon answers.
# CLINICALL_CONTAINER_BASE=debian: PostgreSQL, Redis and nginx from Debian's packages (no image registry).
test-container: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -p no:randomly -p no:cacheprovider -s deploy/test_container.py

# Small sizes (CLINICALL_BENCH_SMALL=1: each script's docstring gives its full-size command); the load beside.
bench: $(TEST_STAMP)
	@for f in bench/*.py; do echo "== $$f ($$(uptime | sed 's/.*load/load/'))"; \
		CLINICALL_BENCH_SMALL=1 $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
