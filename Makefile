# The two set-up commands for a fresh machine: `make up` (the whole stack on the example spec)
# and `make test` (every test). Both install what they need first.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install up test services bench-gateway checkov

$(BIN)/.flotilla-installed: pyproject.toml scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh
	touch $@

install: $(BIN)/.flotilla-installed

up: install
	$(BIN)/flotilla up examples/local.yaml

services:
	bash scripts/services.sh

test: install services
	$(BIN)/pytest -q

# vllm-router (the Rust router it is compared with) goes into its own venv: it is no dependency of ours.
bench-gateway: install
	@command -v wrk >/dev/null || apt-get install -y wrk
	@test -x .venv-router/bin/vllm-router || (python3 -m venv .venv-router && .venv-router/bin/pip install -q vllm-router)
	$(BIN)/python benchmarks/gateway_overhead.py

# checkov on every example's rendering (charts/flotilla/README.md, "Security scan"). It lives in
# its own venv: it pins many packages the project's venv must not share.
CHECKOV_VENV ?= $(HOME)/.cache/flotilla/checkov
checkov: install
	@[ -x $(CHECKOV_VENV)/bin/checkov ] || (python3 -m venv $(CHECKOV_VENV) && $(CHECKOV_VENV)/bin/pip install -q 'checkov>=3.2,<4')
	CHECKOV_VENV=$(CHECKOV_VENV) $(BIN)/python scripts/checkov_examples.py
