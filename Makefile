# witbuilder: every target that needs Python depends on the virtual environment, so each one
# works from a fresh clone. Data targets read CONFIG (default: witbuilder.toml, the demo run).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= witbuilder.toml
WIT    := $(BIN)/wit --config $(CONFIG)
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: realcheck install synthweb queries crawl shards train eval demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py wit_builder/queries/_hotloop.c wit_builder/crawl/_crawlfast.c wit_builder/crawl/download/_area.c wit_builder/core/siphash.h
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(STAMP)

# The test extras (pytest, open_clip for comparisons), Ray, for the engine tests, and the safety
# detectors.
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,ray,safety]'
	touch $(TEST_STAMP)

# The embedded synthetic web every default input comes from (a no-op when up to date).
synthweb: $(STAMP)
	$(WIT) synthweb generate

queries: synthweb
	$(WIT) queries

crawl: synthweb
	$(WIT) crawl

shards: $(STAMP)
	$(WIT) shards

train: $(STAMP)
	$(WIT) train

eval: $(STAMP)
	$(WIT) eval

demo: $(STAMP)
	$(WIT) demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

bench: $(TEST_STAMP)
	@set -e; for script in benchmarks/bench_*.py; do \
		echo "== $$script"; $(BIN)/python $$script; done

realcheck: $(TEST_STAMP)
	$(BIN)/python benchmarks/realcheck.py

clean:
	rm -rf data runs benchmarks/out .pytest_cache
	find queries manifests -mindepth 1 ! -name README.md -exec rm -rf {} +
