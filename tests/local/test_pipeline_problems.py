"""`flotilla up` refuses, by field, what only a deployment can fill in: a pgvector store without `url`."""

from __future__ import annotations

from pathlib import Path

from flotilla.local.pipelines import pipeline_problems
from flotilla.spec.root import FlotillaSpec


def spec_with_store(store: dict) -> FlotillaSpec:
    return FlotillaSpec.model_validate({
        "models": [{"name": "chat", "engine": "sim"}, {"name": "embed", "engine": "onnx"}],
        "pipelines": [{
            "name": "docs",
            "nodes": {"embedding": {"kind": "embedding", "model": "embed"},
                      "retriever": {"kind": "retriever", "store": store},
                      "llm": {"kind": "llm", "model": "chat"}},
            "flow": ["embedding >> retriever >> llm"],
        }],
    })


def test_pgvector_without_url_is_a_problem_here(tmp_path):
    problems = pipeline_problems(spec_with_store({"kind": "pgvector"}), tmp_path / "flotilla.yaml")
    assert any(p.startswith("pipelines[0].nodes.retriever.store.url: a pgvector store needs a url here") for p in problems)


def test_pgvector_with_url_is_not(tmp_path):
    problems = pipeline_problems(spec_with_store({"kind": "pgvector", "url": "postgresql://u@h/db"}), Path(tmp_path) / "f.yaml")
    assert not any("store.url" in p for p in problems)
