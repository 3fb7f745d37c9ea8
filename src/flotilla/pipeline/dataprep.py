"""The data prep API of pipelines: ingest documents, list them, delete them (after the gateway's auth).

Paths and fields follow the seed family's dataprep service: POST /v1/dataprep/ingest (multipart),
POST /v1/dataprep/get, POST /v1/dataprep/delete ({"file_path": NAME or "all"}); `pipeline` names
the pipeline (optional when the spec has one) and `retriever` its retriever node (optional when it
has one).
"""

from __future__ import annotations

from typing import Any

from flotilla.pipeline.calls import ModelClient
from flotilla.pipeline.errors import CallFailed, CallRejected, PipelineError
from flotilla.pipeline.ingest.extract import UnsupportedDocument
from flotilla.pipeline.ingest.form import IngestForm
from flotilla.pipeline.ingest.links import fetch_link
from flotilla.pipeline.ingest.service import IngestOutcome
from flotilla.pipeline.metrics import PipelineMetrics
from flotilla.pipeline.runtime import IngestNotPossible, PipelineRuntime, ServedPipeline
from flotilla.pipeline.stores.base import StoreError


def _bad(message: str, param: str | None = None, status: int = 400, code: str = "invalid_request") -> PipelineError:
    return PipelineError(status, message, code, param, type="invalid_request_error")


class DataPrep:
    def __init__(self, runtime: PipelineRuntime, metrics: PipelineMetrics | None = None) -> None:
        self.runtime = runtime
        self.metrics = metrics

    def pipeline(self, name: str | None) -> ServedPipeline:
        pipelines = self.runtime.pipelines
        if name is None:
            if len(pipelines) != 1:
                raise _bad(f"Name the pipeline with `pipeline` (pipelines: {', '.join(pipelines) or 'none'}).", "pipeline")
            return next(iter(pipelines.values()))
        served = pipelines.get(name)
        if served is None:
            raise _bad(f"The pipeline '{name}' does not exist. Pipelines: {', '.join(pipelines) or '(none)'}.",
                       "pipeline", 404, "pipeline_not_found")
        return served

    @staticmethod
    def _ingestor(served: ServedPipeline, retriever: str | None):
        try:
            return served.ingestor(retriever)
        except IngestNotPossible as exc:
            raise _bad(str(exc), "retriever") from None

    async def ingest(self, served: ServedPipeline, form: IngestForm, client: ModelClient) -> dict[str, Any]:
        limits = served.spec.ingest
        size = form.chunk_size or limits.chunk_size
        overlap = limits.chunk_overlap if form.chunk_overlap is None else form.chunk_overlap
        if not 50 <= size <= 100_000:
            raise _bad("'chunk_size' must be between 50 and 100000 characters.", "chunk_size")
        if not 0 <= overlap < size:
            raise _bad("'chunk_overlap' must be at least 0 and smaller than chunk_size.", "chunk_overlap")
        if form.links and not limits.allow_links:
            raise _bad(f"Pipeline '{served.spec.name}' does not fetch links (ingest.allowLinks is false).", "link_list")
        if len(form.files) + len(form.links) > limits.max_files:
            raise _bad(f"At most {limits.max_files} files and links per request.", "files")
        for upload in form.files:
            if len(upload.data) > limits.max_file_bytes:
                raise _bad(f"{upload.name} is larger than {limits.max_file_bytes} bytes.", "files", 413, "document_too_large")
        ingestor = self._ingestor(served, form.retriever)
        uploads = list(form.files)
        session = self.runtime.session
        assert session is not None
        for link in form.links:
            uploads.append(await fetch_link(session, link, limits.max_file_bytes))
        outcomes: list[IngestOutcome] = []
        for upload in uploads:
            try:
                outcomes.append(await ingestor.ingest(upload, size, overlap, client))
            except UnsupportedDocument as exc:
                raise _bad(str(exc), "files", 415, "unsupported_document") from None
            except CallRejected as exc:
                raise PipelineError(exc.status, f"Ingest into '{served.spec.name}': {exc}", exc.code or "rejected",
                                    None, exc.headers) from None
            except CallFailed as exc:
                raise PipelineError(502, f"Ingest into '{served.spec.name}' failed at {upload.name}: {exc}",
                                    "embedding_failed") from None
            except StoreError as exc:
                raise PipelineError(502 if exc.retryable else 409, f"Ingest into '{served.spec.name}': {exc}",
                                    "store_error") from None
        if self.metrics is not None:
            self.metrics.chunks_ingested(served.spec.name, sum(o.chunks for o in outcomes if o.status == "ingested"))
        return {"status": 200, "message": "Data preparation succeeded", "pipeline": served.spec.name,
                "documents": [o.as_json() for o in outcomes]}

    async def list(self, served: ServedPipeline, retriever: str | None) -> dict[str, Any]:
        ingestor = self._ingestor(served, retriever)
        documents = await ingestor.store.documents()
        return {"pipeline": served.spec.name, "documents": [
            {"document": d.document, "chunks": d.chunks, "embedding_model": d.embedding_model, "ingested_at": d.ingested_at}
            for d in documents
        ]}

    async def delete(self, served: ServedPipeline, retriever: str | None, file_path: Any) -> dict[str, Any]:
        if not isinstance(file_path, str) or not file_path:
            raise _bad("'file_path' must name a document, or be \"all\".", "file_path")
        ingestor = self._ingestor(served, retriever)
        deleted = await ingestor.store.delete(None if file_path == "all" else file_path)
        if deleted == 0 and file_path != "all":
            raise _bad(f"No document '{file_path}' in pipeline '{served.spec.name}'.", "file_path", 404, "document_not_found")
        return {"status": 200, "pipeline": served.spec.name, "deleted": deleted}

