# Two commands: `make run` and `make test`. Both create what is missing first. `make check` is
# the quick one while working: lint and the in-process tests (tests/pure, tests/addons).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# The current Claude Code release (2026-11-25). `make test CLAUDE_CODE_VERSION=x.y.z` runs
# the end-to-end tests against another; each version gets its own folder.
CLAUDE_CODE_VERSION := 2.1.332
CLAUDE_DIR := .cache/claude-code/$(CLAUDE_CODE_VERSION)
# The LiteLLM pinned in pyproject.toml and constraints.txt (1.108.14, and why). `make test
# LITELLM_VERSION=x.y.z` installs that release into the venv instead and runs the suite against
# it; the next `make install` without it puts the pinned one back.
LITELLM_VERSION :=
# Python >= 3.12: the first of these that exists and is new enough.
PYTHON_CANDIDATES := $(PYTHON) python3.13 python3.12 python3 \
	$(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3) \
	$(wildcard /usr/local/bin/python3.1[2-9]) $(wildcard /opt/homebrew/bin/python3.1[2-9])

.PHONY: run test check lint bench flows docs install litellm-version claude-code shells chromium llama-server clean

run: install
	$(BIN)/stabilizer run

# pytest-xdist workers for `make test`: a file to a worker (a module's fixtures, such as tests/e2e's
# stack_run, stay in one), the slowest files first (tests/conftest.py). Most of a file's time is
# waiting on its processes, so more workers than cores pay (docs/testing.md has the measurements).
# `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS := 3

# Every tier (tests/conftest.py says which is which): pure, addons, stack, e2e, and tests/bench.
test: lint litellm-version claude-code shells chromium llama-server
	CLAUDE_CODE_VERSION=$(CLAUDE_CODE_VERSION) LITELLM_VERSION=$(LITELLM_VERSION) \
	  $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# Lint and the tiers that start no process (tests/conftest.py fails a test there that does), a
# worker for each core.
check: lint
	$(BIN)/pytest -q -n auto --dist loadfile tests/pure tests/addons

# Style and types, in seconds, before the suite's minutes (settings in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python -m tests.bench

# The tables of docs/configuration.md, written from the policy's fields and the addons' options.
docs: install
	$(BIN)/python -m tests.gendocs

# Record tests/flows/ again (after a Claude Code upgrade): the end-to-end scenarios with the real
# CLI, each passing scenario's flows written, keys replaced, to tests/flows/<scenario>.flow.
flows: install claude-code
	CLAUDE_CODE_VERSION=$(CLAUDE_CODE_VERSION) STABILIZER_RECORD_FLOWS=tests/flows $(BIN)/pytest -q tests/e2e/test_claude.py
	CLAUDE_CODE_VERSION=$(CLAUDE_CODE_VERSION) $(BIN)/pytest -q tests/addons/test_flows.py

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@py=""; for c in $(PYTHON_CANDIDATES); do \
	  if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then py=$$(command -v $$c); break; fi; \
	done; \
	if [ -z "$$py" ]; then \
	  echo "stabilizer needs Python >= 3.12 (mitmproxy 12 requires it) and found none."; \
	  echo "Install one (pyenv install 3.12, apt install python3.12, brew install python@3.12) or run: make PYTHON=/path/to/python3.12"; \
	  exit 1; \
	fi; \
	if [ ! -x $(BIN)/python ] || ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
	  echo "creating $(VENV) with $$py"; rm -rf $(VENV); $$py -m venv $(VENV) || exit 1; \
	fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	$(BIN)/python -m pip check
	@touch $@

# With LITELLM_VERSION: that LiteLLM over the pinned one, every other pin kept (a release that
# needs other versions of them fails here, saying which). Without its [proxy] extra, as pinned:
# a release whose proxy imports a package the pinned set lacks fails to start, naming it (1.110.2:
# semver). No `pip check`: it would name the pin this replaces. The stamp goes, so that `make
# install` reinstalls the pinned set.
litellm-version: install
ifneq ($(LITELLM_VERSION),)
	grep -v '^litellm==' constraints.txt > $(VENV)/constraints-litellm-$(LITELLM_VERSION).txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints-litellm-$(LITELLM_VERSION).txt 'litellm==$(LITELLM_VERSION)'
	rm -f $(VENV)/.installed
endif

claude-code: $(CLAUDE_DIR)/.installed-$(CLAUDE_CODE_VERSION)

$(CLAUDE_DIR)/.installed-$(CLAUDE_CODE_VERSION):
	@command -v npm >/dev/null || { echo "npm is needed for the Claude Code CLI used by the end-to-end tests (apt install npm, brew install node)"; exit 1; }
	rm -rf $(CLAUDE_DIR) && mkdir -p $(CLAUDE_DIR)
	@# A package.json of its own, or npm would install into the nearest one above.
	echo '{"private": true}' > $(CLAUDE_DIR)/package.json
	cd $(CLAUDE_DIR) && npm install --no-audit --no-fund --loglevel=error @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	@touch $@

# The alias tests eval the functions in bash and zsh; the interactive Claude Code runs in tmux.
shells:
	@for tool in zsh tmux; do command -v $$tool >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -qq $$tool >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $$tool; }) >/dev/null; \
	  else echo "$$tool is missing: the tests that need it will be skipped (install $$tool to run them)"; fi; }; done

# The browser test (tests/stack/test_web_browser.py) drives Debian's chromium headless. Root with apt
# installs it (the package lists refreshed only when the install fails on stale ones); anyone
# else is told, and the test is skipped.
chromium:
	@[ -x /usr/bin/chromium ] || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser test"; \
	    (export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; }) >/dev/null; \
	  else echo "/usr/bin/chromium is missing: the mitmweb browser test will be skipped (apt install chromium to run it)"; fi; }

# llama.cpp's llama-server, built once per machine from the llama.cpp tree in llama-cpp-python's
# sdist (about 7 minutes on 2 cores) and kept in ~/.cache/stabilizer/, outside any checkout:
# the real-server tests (tests/llama/) run it. Root with apt installs the compiler and build
# tools it needs; anyone else is told.
llama-server: install
	@command -v cmake >/dev/null && command -v ninja >/dev/null && command -v c++ >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing cmake, ninja and g++ to build llama-server"; \
	    (export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq cmake ninja-build g++ >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq cmake ninja-build g++; }) >/dev/null; \
	  else echo "llama-server needs cmake, ninja and a C++ compiler (apt install cmake ninja-build g++)"; exit 1; fi; }
	$(BIN)/python -m tests.llama.build

clean:
	rm -rf $(VENV) .cache .pytest_cache .hypothesis
