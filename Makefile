# witbuilder: every target that needs Python depends on the virtual environment, so each one
# works from a fresh clone. Data targets read CONFIG (default: witbuilder.toml, the demo run).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= witbuilder.toml
WIT    := $(BIN)/wit --config $(CONFIG)
STAMP  := $(VENV)/.installed

.PHONY: install synthweb queries crawl shards train eval demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

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

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	@set -e; for script in benchmarks/bench_*.py; do \
		echo "== $$script"; $(BIN)/python $$script; done

clean:
	rm -rf data runs benchmarks/out .pytest_cache
	find queries manifests -mindepth 1 ! -name README.md -exec rm -rf {} +
