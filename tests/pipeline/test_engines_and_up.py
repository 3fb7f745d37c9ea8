"""The embedding engines' launch settings, and what `flotilla up` checks for pipelines before it starts."""

import shutil

import pytest
import yaml

from flotilla.engines import EngineNotInstalled, get_engine
from flotilla.local.plan import PlanError, build_plan
from flotilla.local.ports import free_port
from flotilla.spec.loader import SpecError, load_spec, parse_spec
from flotilla.spec.models import ModelSpec

from pipeline_helpers import REPO


def test_onnx_engine_runs_flotilla_embedder_with_its_options():
    model = ModelSpec.model_validate({"name": "embed", "engine": "onnx", "onnx": {"threads": 2, "maxBatchSize": 16}})
    engine = get_engine("onnx")
    argv = engine.local_command(model, 9100)
    assert argv[1:4] == ["-m", "flotilla.cli", "embedder"]
    assert argv[argv.index("--served-model-name") + 1] == "embed"
    assert argv[argv.index("--threads") + 1] == "2" and argv[argv.index("--max-batch-size") + 1] == "16"
    assert argv[-2:] == ["--host", "127.0.0.1"] and engine.health_path == "/health"


def test_tei_engine_settings_and_its_missing_binary(monkeypatch):
    model = ModelSpec.model_validate({"name": "rerank", "engine": "tei", "tei": {"model": "BAAI/bge-reranker-base", "maxClientBatchSize": 64}})
    engine = get_engine("tei")
    env = engine.server_env(model, 8080)
    assert env["MODEL_ID"] == "BAAI/bge-reranker-base" and env["SERVED_MODEL_NAME"] == "rerank"
    assert (env["MAX_CLIENT_BATCH_SIZE"], env["AUTO_TRUNCATE"], env["PORT"]) == ("64", "true", "8080")
    assert engine.container.image_repository == "ghcr.io/huggingface/text-embeddings-inference"
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EngineNotInstalled, match="text-embeddings-router is not on PATH"):
        engine.local_command(model, 8080)


def test_up_plans_the_rag_example_with_its_embedding_engine(tmp_path):
    spec = load_spec(REPO / "examples" / "rag.yaml", env={})
    plan = build_plan(spec, REPO / "examples" / "rag.yaml", tmp_path, gateway_port=free_port())
    assert [e.name for e in plan.engines] == ["engine-chat-0", "engine-embed-0"]
    assert "embedder" in plan.engines[1].argv


def test_up_refuses_missing_sources_before_starting_anything(tmp_path):
    data = yaml.safe_load((REPO / "examples" / "rag.yaml").read_text())
    data["pipelines"][0]["ingest"]["sources"] = ["no-such-folder"]
    data["models"] = [{"name": "chat", "engine": "sim"}, {"name": "embed", "engine": "external", "urls": ["http://127.0.0.1:9"]}]
    spec_file = tmp_path / "rag.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    with pytest.raises(PlanError) as caught:
        build_plan(load_spec(spec_file, env={}), spec_file, tmp_path / "run", gateway_port=free_port())
    assert caught.value.problems == [f"pipelines[0].ingest.sources[0]: {tmp_path / 'no-such-folder'} does not exist"]


def test_sources_need_a_token_to_ingest_with():
    data = yaml.safe_load((REPO / "examples" / "rag.yaml").read_text())
    data["pipelines"][0]["ingest"]["tokens"] = []
    with pytest.raises(SpecError) as caught:
        parse_spec(data, env={})
    assert caught.value.problems == ["pipelines[0].ingest: `sources` are ingested with the first of `tokens`: name a gateway token there"]
