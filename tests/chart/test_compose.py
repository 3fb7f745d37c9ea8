"""`flotilla render --format compose`: the compose project validates against the Compose
Specification's JSON Schema (vendored, compose-spec/SOURCE.md) and, where an implementation that
needs no Docker engine is installed (docker-compose 1.29 from Debian, or `docker compose`), passes
its `config` check; engines, gateway, stores and secrets are wired as the README says."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from chartkit import REPO
from flotilla.chart.compose import ComposeNotPossible, compose_project
from flotilla.chart.spec_source import read_spec_source
from flotilla.spec.loader import load_spec_text
from shared import shared_required

SCHEMA = json.loads((Path(__file__).parent / "compose-spec" / "compose-spec.json").read_text())
RAG = REPO / "examples" / "rag.yaml"
CHATQNA = REPO / "examples" / "opea" / "chatqna.yaml"


def project_of(path: Path, out: Path):
    return compose_project(read_spec_source(path), out)


def schema_problems(compose: dict) -> list[str]:
    validator = jsonschema.Draft201909Validator(SCHEMA)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]


def compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def write_with_env(project, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in project.files().items():
        (out / name).write_text(text)
    (out / ".env").write_text("".join(f"{v.name}=value-of-{v.name.lower()}\n" for v in project.variables))


@pytest.mark.parametrize("spec", [RAG, CHATQNA], ids=["rag", "chatqna"])
def test_compose_file_validates_against_the_compose_specification(spec, tmp_path):
    project = project_of(spec, tmp_path)
    assert schema_problems(project.compose) == []
    # What the file holds after YAML, as compose reads it.
    assert schema_problems(yaml.safe_load(project.files()["compose.yaml"])) == []


@pytest.mark.parametrize("spec", [RAG, CHATQNA], ids=["rag", "chatqna"])
def test_compose_config_check_of_a_real_implementation(spec, tmp_path):
    cli = compose_cli()
    if cli is None:
        reason = "no compose implementation here (scripts/install.sh installs Debian's docker-compose as root)"
        if shared_required():  # CI (.ci/run): everything must run
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    project = project_of(spec, tmp_path)
    write_with_env(project, tmp_path)
    result = subprocess.run([*cli, "-f", "compose.yaml", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == set(project.compose["services"])


def test_a_wrong_field_fails_the_schema(tmp_path):
    project = project_of(RAG, tmp_path)
    project.compose["services"]["gateway"]["depends_on"]["chat"]["condition"] = "service_ready"
    assert schema_problems(project.compose)


def test_rag_engines_gateway_and_ingest(tmp_path):
    project = project_of(RAG, tmp_path)
    services = project.compose["services"]
    chat, embed, gateway = services["chat"], services["embed"], services["gateway"]
    assert chat["image"].startswith("ghcr.io/ggml-org/llama.cpp:server-")
    assert chat["command"][chat["command"].index("--model") + 1] == "/models/flotilla/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert chat["volumes"] == ["chat-cache:/models"] and "chat-cache" in project.compose["volumes"]
    assert chat["depends_on"] == {"chat-copy-model": {"condition": "service_completed_successfully"}}
    assert chat["healthcheck"]["test"][-1] == "http://127.0.0.1:8080/health"
    assert embed["entrypoint"] == ["flotilla"] and embed["command"][:3] == ["embedder", "--port", "8080"]
    assert "volumes" not in embed and "shm_size" not in embed  # the model ships in the image
    assert gateway["depends_on"]["chat"] == {"condition": "service_healthy"}
    assert gateway["depends_on"]["embed"] == {"condition": "service_healthy"}
    args = gateway["command"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--endpoint"] == ["chat=dns+http://chat:8080", "embed=dns+http://embed:8080"]
    assert "./flotilla.yaml:/etc/flotilla/flotilla.yaml:ro" in gateway["volumes"]
    assert gateway["env_file"] == [".env"] and gateway["read_only"] is True
    ingest = services["ingest-rag"]
    assert ingest["command"][:2] == ["ingest", "rag"] and ingest["depends_on"] == {"gateway": {"condition": "service_healthy"}}
    assert ingest["environment"] == {"FLOTILLA_TOKEN": "${FLOTILLA_TOKEN_STAFF:-local-staff-token}"}
    source_mount = ingest["volumes"][0].split(":")[0]
    assert (tmp_path / source_mount).resolve() == (REPO / "examples" / "rag-docs").resolve()
    store = project.gateway_spec["pipelines"][0]["nodes"]["retriever"]["store"]
    assert store == {"kind": "sqlite", "path": "/var/lib/flotilla/vectors/rag-retriever.db"}
    assert "vectordb" not in services


def test_the_gateway_spec_is_one_the_gateway_accepts(tmp_path):
    project = project_of(CHATQNA, tmp_path)
    text = project.files()["flotilla.yaml"]
    spec = load_spec_text(text, "flotilla.yaml", env={"FLOTILLA_TOKEN_OPEA": "opea-secret-1",
                                                      "FLOTILLA_VECTOR_DB_URL": "postgresql://flotilla:pw@vectordb:5432/flotilla"})
    assert spec.pipelines[0].nodes["retrieval"].store.url == "postgresql://flotilla:pw@vectordb:5432/flotilla"
    assert spec.gateway.port == 8080 and spec.gateway.host == "0.0.0.0"


def test_chatqna_keeps_the_seed_ports_and_runs_its_building_blocks(tmp_path):
    project = project_of(CHATQNA, tmp_path)
    services = project.compose["services"]
    assert services["embedding"]["environment"]["MODEL_ID"] == "BAAI/bge-base-en-v1.5"
    assert services["reranking"]["environment"]["MODEL_ID"] == "BAAI/bge-reranker-base"
    assert services["llm"]["environment"]["MODEL_ID"] == "Intel/neural-chat-7b-v3-3"
    assert services["embedding"]["image"].startswith("ghcr.io/huggingface/text-embeddings-inference:")
    assert services["llm"]["image"].startswith("ghcr.io/huggingface/text-generation-inference:")
    assert (services["embedding"]["ports"], services["reranking"]["ports"], services["llm"]["ports"]) == (
        ["6000:8080"], ["8000:8080"], ["9000:8080"])
    assert services["gateway"]["ports"] == ["8080:8080"]
    gpu = services["llm"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "resources" not in services["embedding"]["deploy"]  # TEI on CPU
    assert services["llm"]["environment"]["HUGGINGFACE_HUB_CACHE"] == "/models/hub"
    # The retriever keeps its vectors in the project's own pgvector, whose password comes from .env.
    vectordb = services["vectordb"]
    assert vectordb["image"] == "pgvector/pgvector:pg17"
    assert vectordb["environment"]["POSTGRES_PASSWORD"] == "${FLOTILLA_VECTOR_DB_PASSWORD:?set it in .env}"
    assert services["gateway"]["depends_on"]["vectordb"] == {"condition": "service_healthy"}
    assert services["gateway"]["environment"]["FLOTILLA_VECTOR_DB_URL"].startswith("postgresql://flotilla:${FLOTILLA_VECTOR_DB_PASSWORD}@vectordb")
    names = {v.name for v in project.variables}
    assert {"FLOTILLA_TOKEN_OPEA", "FLOTILLA_VECTOR_DB_PASSWORD"} <= names


def test_secrets_are_never_written(tmp_path):
    spec = tmp_path / "flotilla.yaml"
    spec.write_text(yaml.safe_dump({
        "models": [
            {"name": "big", "engine": "vllm", "vllm": {"model": "org/m", "tensorParallelSize": 2},
             "hfToken": {"value": "hf_literal_secret"}},
            {"name": "remote", "engine": "external", "urls": ["https://api.example.com"], "apiKey": "sk-literal-key"},
        ],
        "gateway": {"database": "postgresql+asyncpg://u:db-literal-pw@db:5432/f",
                    "tokens": [{"name": "staff", "token": "literal-token-value", "priority": 10}]},
    }))
    project = compose_project(read_spec_source(spec), tmp_path / "out")
    text = "".join(project.files().values())
    for secret in ("hf_literal_secret", "sk-literal-key", "db-literal-pw", "literal-token-value"):
        assert secret not in text
    assert project.gateway_spec["gateway"]["tokens"][0]["token"] == "${FLOTILLA_TOKEN_STAFF}"
    assert project.gateway_spec["models"][1]["apiKey"] == "${FLOTILLA_MODEL_REMOTE_API_KEY}"
    assert project.gateway_spec["gateway"]["database"] == "${FLOTILLA_DATABASE_URL}"
    big = project.compose["services"]["big"]
    assert big["environment"]["HF_TOKEN"] == "${HF_TOKEN:?set HF_TOKEN in .env}"
    assert big["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 2
    assert big["shm_size"] == "8g"
    example = project.files()[".env.example"]
    for name in ("FLOTILLA_TOKEN_STAFF=", "FLOTILLA_MODEL_REMOTE_API_KEY=", "FLOTILLA_DATABASE_URL=", "HF_TOKEN="):
        assert name in example
    assert "remote" not in project.compose["services"]  # external: only a URL


def test_what_one_docker_host_cannot_run_is_refused_by_field(tmp_path):
    spec = tmp_path / "flotilla.yaml"
    spec.write_text(yaml.safe_dump({
        "models": [{"name": "huge", "engine": "vllm", "vllm": {"model": "org/405b"},
                    "parallelism": {"tensor": 8, "pipeline": 2, "nodes": 2}}],
    }))
    with pytest.raises(ComposeNotPossible, match=r"models\[huge\]\.parallelism\.nodes"):
        compose_project(read_spec_source(spec), tmp_path / "out")


def test_render_command_writes_the_project(tmp_path):
    out = tmp_path / "compose"
    result = subprocess.run([*_flotilla(), "render", str(RAG), "--format", "compose", "-o", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".env.example", "compose.yaml", "flotilla.yaml"]
    again = subprocess.run([*_flotilla(), "render", str(RAG), "--format", "compose", "-o", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "--clean" in again.stderr


def _flotilla() -> list[str]:
    import sys

    return [sys.executable, "-m", "flotilla.cli"]


def test_global_image_registry_applies_as_in_the_chart(tmp_path):
    spec = tmp_path / "flotilla.yaml"
    spec.write_text(yaml.safe_dump({
        "global": {"imageRegistry": "registry.example.com/mirror"},
        "models": [{"name": "chat", "engine": "vllm", "vllm": {"model": "org/m"}},
                   {"name": "embed", "engine": "tei", "tei": {"model": "BAAI/bge-small-en-v1.5"}}],
    }))
    services = compose_project(read_spec_source(spec), tmp_path / "out").compose["services"]
    assert services["chat"]["image"].startswith("registry.example.com/mirror/vllm/vllm-openai:")
    assert services["embed"]["image"].startswith("registry.example.com/mirror/huggingface/text-embeddings-inference:")
    assert services["gateway"]["image"].startswith("registry.example.com/mirror/flotilla/flotilla:")
