import asyncio
import json
import sys
import urllib.request

import pytest
from up_helpers import wait_until

from flotilla.engines import ENGINE_KINDS, UnknownEngine, get_engine, launches_process
from flotilla.engines.external import NothingToLaunch
from flotilla.local.ports import free_port
from flotilla.local.process import spawn_in_own_group, stop_group
from flotilla.spec.models import ModelSpec


def model(**fields) -> ModelSpec:
    return ModelSpec.model_validate(fields)


def test_registry_returns_each_modules_engine():
    from flotilla.engines import llamacpp, sim

    assert get_engine("sim") is sim.ENGINE
    assert get_engine("llamacpp") is llamacpp.ENGINE
    assert {"sim", "llamacpp", "external", "vllm"} <= set(ENGINE_KINDS)


def test_unknown_engine_lists_the_known_ones():
    with pytest.raises(UnknownEngine, match="unknown engine 'ollama'; known engines: sim, llamacpp"):
        get_engine("ollama")


def test_external_has_nothing_to_launch():
    engine = get_engine("external")
    assert not launches_process(engine)
    assert launches_process(get_engine("sim"))
    with pytest.raises(NothingToLaunch, match="'remote' is external"):
        engine.local_command(model(name="remote", engine="external", urls=["http://10.0.0.5:8000"]), 8000)


def test_llamacpp_command_carries_the_spec_options():
    m = model(
        name="chat", engine="llamacpp", servedModelName="smol",
        llamacpp={"nCtx": 1024, "nThreads": 1, "chatFormat": "chatml", "extraArgs": ["--n_batch", "64"]},
    )
    argv = get_engine("llamacpp").local_command(m, 8123)
    assert argv[:3] == [sys.executable, "-m", "llama_cpp.server"]
    pairs = dict(zip(argv[3::2], argv[4::2]))
    assert pairs["--model"].endswith(".gguf")
    assert pairs["--model_alias"] == "smol"
    assert pairs["--port"] == "8123" and pairs["--host"] == "127.0.0.1"
    assert pairs["--n_ctx"] == "1024"
    assert pairs["--n_threads"] == "1" and pairs["--n_threads_batch"] == "1"
    assert pairs["--chat_format"] == "chatml" and pairs["--n_batch"] == "64"


def test_llamacpp_default_threads_are_left_to_llama_cpp():
    argv = get_engine("llamacpp").local_command(model(name="chat", engine="llamacpp"), 8123)
    assert "--n_threads" not in argv


def test_sim_command_starts_a_real_sim_with_every_option(tmp_path):
    """The sim's CLI rejects unknown flags, so this also checks our flags match it."""
    m = model(
        name="fake", engine="sim", servedModelName="fake-upstream",
        sim={"ttftMs": 5, "itlMs": 1, "maxNumSeqs": 3, "deterministic": True, "errorRate": 0.0, "seed": 7},
    )
    port = free_port()
    engine = get_engine("sim")
    log = tmp_path / "sim.log"
    proc = spawn_in_own_group(engine.local_command(m, port), log)
    try:
        def models():
            if proc.poll() is not None:
                raise AssertionError(f"sim exited {proc.returncode}: {log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{engine.health_path}", timeout=2):
                    pass
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                    return json.load(r)
            except OSError:
                return None

        listed = wait_until(models, 60, "the sim to answer")
        assert [m["id"] for m in listed["data"]] == ["fake-upstream"]
    finally:
        asyncio.run(stop_group(proc, grace_s=10))
