"""The `pipelines:` spec: the flow grammar, typed wiring, and every problem reported with its field path."""

import re

import pytest

from flotilla.spec.loader import SpecError, parse_spec
from flotilla.spec.pipeline_flow import FlowSyntaxError, flow_edges, parse_flow_line

BASE_MODELS = [
    {"name": "chat", "engine": "sim"},
    {"name": "embed", "engine": "onnx"},
]
TOKENS = {"tokens": [{"name": "staff", "token": "staff-secret-1"}]}
RAG_NODES = {
    "embedding": {"kind": "embedding", "model": "embed"},
    "retriever": {"kind": "retriever"},
    "reranker": {"kind": "reranker", "model": "embed"},
    "llm": {"kind": "llm", "model": "chat"},
}


def spec_with(nodes=None, flow=None, models=None, **pipeline):
    return {
        "models": models or BASE_MODELS,
        "gateway": TOKENS,
        "pipelines": [{"name": "rag", "nodes": nodes or RAG_NODES, "flow": flow or ["embedding >> retriever >> reranker >> llm"], **pipeline}],
    }


def problems(data) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, env={})
    return caught.value.problems


def test_flow_grammar_chains_groups_and_lines():
    assert parse_flow_line("a >> (b, c) >> d") == [["a"], ["b", "c"], ["d"]]
    edges = [str(e) for e in flow_edges(["a >> (b, c) >> d", "a >> d"])]
    assert edges == ["a >> b", "a >> c", "b >> d", "c >> d", "a >> d"]
    for bad, message in [("a >>", "ends with '>>'"), ("a b", "expected '>>'"), ("(a, b", "closed with ')'"), (">> a", "node name")]:
        with pytest.raises(FlowSyntaxError, match=re.escape(message)):
            parse_flow_line(bad)


def test_rag_pipeline_wires_by_type():
    spec = parse_spec(spec_with(), env={})
    graph = spec.pipelines[0].graph
    assert graph.sink == "llm"
    assert [str(s) for s in graph.wiring["retriever"]["vector"]] == ["embedding.vector"]
    assert [str(s) for s in graph.wiring["reranker"]["query"]] == ["request.query"]
    assert [str(s) for s in graph.wiring["llm"]["documents"]] == ["reranker.documents"]
    assert [str(s) for s in graph.wiring["llm"]["messages"]] == ["request.messages"]


def test_parallel_retrievers_fan_in_to_one_documents_input():
    nodes = {**RAG_NODES, "faq": {"kind": "retriever"}}
    spec = parse_spec(spec_with(nodes, ["embedding >> (retriever, faq) >> reranker >> llm"]), env={})
    wiring = spec.pipelines[0].graph.wiring
    assert sorted(str(s) for s in wiring["reranker"]["documents"]) == ["faq.documents", "retriever.documents"]


def test_cycle_is_reported_on_the_flow():
    found = problems(spec_with(flow=["embedding >> retriever >> reranker >> llm", "llm >> embedding"]))
    assert found == ["pipelines[0].flow: the flow has a cycle: embedding >> retriever >> reranker >> llm >> embedding"]


def test_unknown_node_names_the_flow_line_and_the_known_nodes():
    found = problems(spec_with(flow=["embedding >> retriever >> rerank >> llm"]))
    assert "pipelines[0].flow[0]: unknown node 'rerank' (nodes: embedding, retriever, reranker, llm)" in found[0]
    assert found[1] == "pipelines[0].nodes.reranker: node 'reranker' is not in the flow"


def test_type_mismatch_between_connected_nodes():
    nodes = {"embedding": RAG_NODES["embedding"], "llm": RAG_NODES["llm"]}
    found = problems(spec_with(nodes, ["embedding >> llm"]))
    assert len(found) == 1
    assert found[0].startswith("pipelines[0].flow[0]: type mismatch in embedding >> llm: llm (llm) takes messages (messages), documents (documents); embedding (embedding) gives vector (vector)")


def test_missing_input_type_names_what_predecessors_give():
    found = problems(spec_with(flow=["embedding >> reranker >> llm", "retriever >> llm"]))
    assert "pipelines[0].nodes.reranker: reranker (reranker) needs a documents input: embedding gives vector" in found
    assert "pipelines[0].nodes.retriever: retriever (retriever) needs a vector input: nothing flows into it" in found


def test_explicit_inputs_are_checked():
    nodes = {**RAG_NODES, "llm": {**RAG_NODES["llm"], "inputs": {"documents": "retriever.documents"}}}
    found = problems(spec_with(nodes))
    assert found == ["pipelines[0].nodes.llm.inputs.documents: 'retriever' does not flow into 'llm' (add `retriever >> llm` to the flow) (got 'retriever.documents')"]
    nodes = {**RAG_NODES, "llm": {**RAG_NODES["llm"], "inputs": {"documents": "reranker.vector"}}}
    assert "has no output 'vector'" in problems(spec_with(nodes))[0]


def test_ambiguous_single_input_asks_for_a_mapping():
    nodes = {**RAG_NODES, "embedding2": {"kind": "embedding", "model": "embed"}}
    found = problems(spec_with(nodes, ["(embedding, embedding2) >> retriever >> reranker >> llm"]))
    assert found == ["pipelines[0].nodes.retriever.inputs.vector: ambiguous vector input: embedding.vector, embedding2.vector all give one; choose with `inputs: {vector: NODE.PORT}`"]


def test_flow_must_end_in_text():
    nodes = {k: RAG_NODES[k] for k in ("embedding", "retriever")}
    found = problems(spec_with(nodes, ["embedding >> retriever"]))
    assert "gives no text to answer with" in found[0] and found[0].startswith("pipelines[0].flow:")


def test_models_tokens_and_engines_are_checked_against_the_spec():
    nodes = {**RAG_NODES, "llm": {"kind": "llm", "model": "gpt"}, "reranker": {"kind": "reranker", "model": "chat"}}
    found = problems(spec_with(nodes, ingest={"tokens": ["nobody"]}))
    assert "pipelines[0].nodes.llm.model: unknown model 'gpt' (models: chat, embed) (got 'gpt')" in found
    assert any(p.startswith("pipelines[0].nodes.reranker.model: a reranker node cannot use model 'chat': engine sim") for p in found)
    assert "pipelines[0].ingest.tokens[0]: no gateway token is named 'nobody' (tokens: staff) (got 'nobody')" in found


def test_pipeline_name_may_not_shadow_a_model():
    data = spec_with()
    data["pipelines"][0]["name"] = "chat"
    assert problems(data) == ["pipelines[0].name: 'chat' is already a model's name (got 'chat')"]


def test_node_fields_are_validated():
    nodes = {**RAG_NODES, "retriever": {"kind": "retriever", "k": 80}, "llm": {"kind": "llm", "model": "chat", "systemPrompt": "{ctx}"}}
    found = problems(spec_with(nodes))
    assert any(p.startswith("pipelines[0].nodes.retriever.retriever: k (80) must not exceed maxK (50)") for p in found)
    assert any("systemPrompt may use only the placeholder {context}" in p for p in found)


def test_http_node_default_inputs_and_declared_outputs():
    nodes = {
        "embedding": RAG_NODES["embedding"], "retriever": RAG_NODES["retriever"],
        "guard": {"kind": "http", "url": "http://127.0.0.1:9/check", "outputs": {"documents": "documents"}},
        "llm": RAG_NODES["llm"],
    }
    spec = parse_spec(spec_with(nodes, ["embedding >> retriever >> guard >> llm"]), env={})
    wiring = spec.pipelines[0].graph.wiring
    assert {k: [str(s) for s in v] for k, v in wiring["guard"].items()} == {
        "query": ["request.query"], "messages": ["request.messages"], "documents": ["retriever.documents"],
    }
    assert [str(s) for s in wiring["llm"]["documents"]] == ["guard.documents"]


def test_store_kinds_and_tei_engine():
    models = [*BASE_MODELS, {"name": "rerank", "engine": "tei", "tei": {"model": "BAAI/bge-reranker-base"}}]
    nodes = {**RAG_NODES, "retriever": {"kind": "retriever", "store": {"kind": "pgvector", "url": "postgresql://u:p@db/x"}},
             "reranker": {"kind": "reranker", "model": "rerank"}}
    spec = parse_spec(spec_with(nodes, models=models), env={})
    assert spec.pipelines[0].nodes["retriever"].store.kind == "pgvector"
    assert any("tei needs a `tei:` section" in p or "needs a `tei:` section" in p
               for p in problems({"models": [{"name": "e", "engine": "tei"}]}))
