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
        llamacpp={"nCtx": 1024, "nThreads": 1, "nParallel": 3, "chatFormat": "chatml", "extraArgs": ["--batch-size", "64"]},
    )
    argv = get_engine("llamacpp").local_command(m, 8123)
    # llama.cpp's own server, from the prebuilt xllamacpp wheel, with llama-server's flags.
    assert argv[:3] == [sys.executable, "-m", "flotilla.engines.llamacpp_serve"]
    pairs = {flag: argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag.startswith("--")}
    assert pairs["--model"].endswith(".gguf")
    assert pairs["--alias"] == "smol"
    assert pairs["--port"] == "8123" and pairs["--host"] == "127.0.0.1"
    assert pairs["--parallel"] == "3" and pairs["--ctx-size"] == str(1024 * 3)  # nCtx per slot
    assert pairs["--threads"] == "1"
    assert pairs["--chat-template"] == "chatml" and pairs["--batch-size"] == "64"
    assert "--metrics" in argv


def test_llamacpp_max_concurrency_defaults_to_its_slots():
    assert model(name="chat", engine="llamacpp").max_concurrency == 4
    assert model(name="chat", engine="llamacpp", llamacpp={"nParallel": 2}).max_concurrency == 2
    assert model(name="chat", engine="llamacpp", maxConcurrency=9).max_concurrency == 9


def test_llamacpp_default_threads_are_left_to_llama_cpp():
    argv = get_engine("llamacpp").local_command(model(name="chat", engine="llamacpp"), 8123)
    assert "--threads" not in argv


def test_llamacpp_launcher_maps_llama_server_flags_and_names_unknown_ones():
    from types import SimpleNamespace

    from flotilla.engines.llamacpp_serve import UnsupportedFlag, apply_flags

    params = SimpleNamespace(
        model=SimpleNamespace(path=None), cpuparams=SimpleNamespace(n_threads=-1),
        cpuparams_batch=SimpleNamespace(n_threads=-1), sampling=SimpleNamespace(seed=0),
    )
    apply_flags(params, ["--host", "127.0.0.1", "--port=8080", "-m", "/m.gguf", "--alias", "chat", "-c", "4096",
                         "--parallel", "4", "--threads", "2", "--metrics"])
    assert (params.hostnames, params.port, params.model.path, params.model_alias) == (["127.0.0.1"], 8080, "/m.gguf", {"chat"})
    assert (params.n_ctx, params.n_parallel, params.endpoint_metrics) == (4096, 4, True)
    assert params.cpuparams.n_threads == params.cpuparams_batch.n_threads == 2
    with pytest.raises(UnsupportedFlag, match="'--flash-attn'.*supported here: .*--ctx-size"):
        apply_flags(params, ["--flash-attn"])
    with pytest.raises(UnsupportedFlag, match="--port: 'x' is not a valid value"):
        apply_flags(params, ["--port", "x"])


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
