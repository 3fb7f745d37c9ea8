"""`flotilla up` and pipelines: what they need installed, and ingesting their `ingest.sources` at start.

Sources are files or folders relative to the spec file; they are sent through the gateway's data
prep API with the first token of the pipeline's `ingest.tokens`, so they take the same path as
`flotilla ingest` (and unchanged documents are skipped).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from flotilla.spec.root import FlotillaSpec

# What the gateway imports to serve pipelines (the pipelines extra; engines check their own).
GATEWAY_MODULES = {"numpy": "numpy", "semantic_text_splitter": "semantic-text-splitter", "pypdf": "pypdf", "bs4": "beautifulsoup4"}


def pipeline_problems(spec: FlotillaSpec, spec_path: Path) -> list[str]:
    if not spec.pipelines:
        return []
    problems = []
    missing = [dist for module, dist in GATEWAY_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        problems.append(f"pipelines: the gateway needs {', '.join(missing)}: pip install 'flotilla[pipelines]'")
    for i, pipeline in enumerate(spec.pipelines):
        for name, node in pipeline.nodes.items():
            if node.kind == "retriever" and node.store.kind == "pgvector" and not node.store.url:
                problems.append(
                    f"pipelines[{i}].nodes.{name}.store.url: a pgvector store needs a url here "
                    "(the chart and compose fill it in from their own PostgreSQL)"
                )
        for j, source in enumerate(pipeline.ingest.sources):
            if not (spec_path.parent / source).exists():
                problems.append(f"pipelines[{i}].ingest.sources[{j}]: {spec_path.parent / source} does not exist")
    return problems


async def ingest_sources(spec: FlotillaSpec, spec_path: Path, gateway_url: str, event) -> None:
    """Send every pipeline's sources to the gateway; `event(message)` reports each pipeline's outcome.
    Raises UploadFailed."""
    from flotilla.pipeline.upload import find_documents, upload_documents

    base = spec_path.parent
    tokens = {t.name: t.token for t in spec.gateway.tokens}
    for pipeline in spec.pipelines:
        if not pipeline.ingest.sources:
            continue
        documents = find_documents([base / s for s in pipeline.ingest.sources])
        outcomes = await upload_documents(gateway_url, tokens[pipeline.ingest.tokens[0]], pipeline.name, documents)
        fresh = [o for o in outcomes if o["status"] == "ingested"]
        event(
            f"pipeline {pipeline.name}: {len(outcomes)} document(s) from {', '.join(pipeline.ingest.sources)}: "
            f"{len(fresh)} ingested ({sum(o['chunks'] for o in fresh)} chunks), {len(outcomes) - len(fresh)} unchanged"
        )
