# Two commands on a fresh machine: `make serve` and `make test`. Everything else is set up on demand.
PYTHON ?= python3
VENV := .venv
SDK_VENV := .venv-sdk
SDK_0518_VENV := .venv-sdk-0518
FAKELLM_VENV := .venv-fakellm
BIN := $(VENV)/bin

.PHONY: serve compile test lint typecheck bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# The official SDK pins old dependencies (cryptography<43), so it gets an environment of its own.
$(SDK_VENV)/.installed: tests/sdk-constraints.txt
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/pip install -q -c tests/sdk-constraints.txt humanloop==0.7.35
	touch $@

# The older SDK 0.5.18, still in many lockfiles, pins its own (urllib3<2) and cannot share .venv-sdk.
$(SDK_0518_VENV)/.installed: tests/sdk-0518-constraints.txt
	$(PYTHON) -m venv $(SDK_0518_VENV)
	$(SDK_0518_VENV)/bin/pip install -q -c tests/sdk-0518-constraints.txt humanloop==0.5.18
	touch $@

# The official TypeScript SDK (humanloop 0.5.36, the v4 era) and its dependencies, exactly as locked; run by node.
# --ignore-scripts: none of them needs an install script, and nothing else is to be downloaded.
TS_SDK := tests/e2e/ts
$(TS_SDK)/node_modules/.installed: $(TS_SDK)/package.json $(TS_SDK)/package-lock.json
	cd $(TS_SDK) && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# fakellm: an OpenAI/Anthropic-shaped upstream nobody on this team wrote.
$(FAKELLM_VENV)/.installed: tests/fakellm-constraints.txt
	$(PYTHON) -m venv $(FAKELLM_VENV)
	$(FAKELLM_VENV)/bin/pip install -q -c tests/fakellm-constraints.txt fakellm==0.3.5
	touch $@

# The browser tests drive Debian's chromium (a browser is never downloaded); a fresh CI machine lacks it.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then echo sudo; fi)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

$(CHROMIUM):
	$(APT_INSTALL) || { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update && $(APT_INSTALL); }

# Bytecode written ahead: an editable install leaves loopgate's own modules uncompiled, and with
# PYTHONDONTWRITEBYTECODE set (as on our machines) every start compiled them again (70-90 ms).
compile: $(BIN)/.installed
	$(BIN)/python -m compileall -q src

serve: compile
	$(BIN)/loopgate serve

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)

typecheck: $(BIN)/.installed
	$(BIN)/mypy

test: $(BIN)/.installed $(SDK_VENV)/.installed $(SDK_0518_VENV)/.installed $(TS_SDK)/node_modules/.installed $(FAKELLM_VENV)/.installed $(CHROMIUM) lint typecheck
	$(BIN)/pytest

bench: compile
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(SDK_VENV) $(SDK_0518_VENV) $(FAKELLM_VENV) .venv-peer-* $(TS_SDK)/node_modules
