"""The gateway serves the spec's pipelines: as models on /v1/chat/completions, and their data prep API.

A pipeline request is authorised, admitted, accounted and measured by the gateway's own inference
handler like any model's (app.py's VirtualModel hook). Its nodes call the spec's models through
`InternalModelClient`: the same acquire -> upstream -> release path as a client request, with the
caller's token, priority and threshold, so pipeline traffic waits in each model's queue by priority.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from flotilla.gateway import errors
from flotilla.gateway.app import GatewayHandlers, new_request_id
from flotilla.gateway.dispatch import Ticket
from flotilla.gateway.prefix_blocks import prompt_blocks
from flotilla.gateway.relay import RelayResult
from flotilla.gateway.requests import ParsedBody, upstream_body, vllm_priority_of
from flotilla.gateway.upstream import replica_at_fault
from flotilla.httpserver import Request, Router, StreamResponse, json_response
from flotilla.httpserver import Response as HttpResponse
from flotilla.pipeline.answer import AnswerStats
from flotilla.pipeline.dataprep import DataPrep
from flotilla.pipeline.errors import CallFailed, CallRejected, PipelineError
from flotilla.pipeline.ingest.form import read_ingest_form
from flotilla.pipeline.metrics import PipelineMetrics
from flotilla.pipeline.runtime import PipelineRuntime, ServedPipeline
from flotilla.pipeline.serving import serve_chat
from flotilla.spec.root import FlotillaSpec
from flotilla.store import UsageRecord
from flotilla.transport import Response as UpstreamResponse
from flotilla.transport import TransportError

log = logging.getLogger("flotilla.gateway")
DATAPREP_INGEST = "/v1/dataprep/ingest"


class _Response:
    """An engine's answer as pipeline nodes read it; a transport failure while reading becomes a
    CallFailed naming the model (pipeline/ knows nothing of the gateway's transport)."""

    def __init__(self, upstream: UpstreamResponse, model: str) -> None:
        self._upstream = upstream
        self._model = model
        self.status = upstream.status
        self.headers: Mapping[str, str] = upstream.headers

    async def read(self) -> bytes:
        try:
            return await self._upstream.read()
        except TransportError as exc:
            raise CallFailed(f"model {self._model!r} broke off: {exc}", retryable=False) from None

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._upstream.iter_chunks():
                yield chunk
        except TransportError as exc:
            raise CallFailed(f"model {self._model!r} broke off: {exc}", retryable=False) from None


class InternalModelClient:
    """Calls this gateway's models for one caller: its token name, priority and threshold."""

    def __init__(self, handlers: GatewayHandlers, token_name: str, priority: int, threshold: int) -> None:
        self.handlers = handlers
        self.token_name = token_name
        self.priority = priority
        self.threshold = threshold
        self.queue_wait_s = 0.0  # what this request's calls waited in model queues, together

    @contextlib.asynccontextmanager
    async def open(self, model: str, path: str, payload: dict[str, Any]) -> AsyncIterator[_Response]:
        h = self.handlers
        served = h.models.get(model)
        if served is None:
            raise CallFailed(f"model {model!r} is not served by this gateway", retryable=False)
        stream = bool(payload.get("stream", False))
        body = upstream_body(
            ParsedBody(dict(payload), model, stream, False, None), served.upstream_name,
            vllm_priority_of(self.priority) if served.vllm_priority else None,
        )
        blocks = prompt_blocks(payload) if served.prefix_aware else ()
        ticket = Ticket(new_request_id(), model, self.token_name, self.priority, self.threshold, blocks=blocks)
        headers = {"Content-Type": "application/json", "X-Request-Id": ticket.request_id, **served.upstream_headers}
        last_error = ""
        for attempt in range(h.max_attempts):
            try:
                lease = await h._acquire(ticket, retry=attempt > 0)
            except errors.GatewayError as exc:  # the caller's threshold, or no replica: the gateway's own answer
                raise CallRejected(exc.status, exc.message, exc.code, exc.headers) from None
            self.queue_wait_s += lease.queue_wait_s
            failed = False
            try:
                try:
                    upstream = await h.upstream.post(lease.replica.url, path, body, headers)
                except TransportError as exc:
                    failed = replica_at_fault(exc)
                    if exc.retry_safe:  # never reached the engine: another replica may take it
                        last_error = f"{lease.replica.label}: {exc}"
                        h.metrics.observe_retry(model)
                        continue
                    # The engine may have started on it: never sent twice (the node's own retry
                    # policy decides, before any byte reached the client).
                    raise CallFailed(f"model {model!r} ({lease.replica.label}) failed: {exc}", retryable=True) from None
                async with upstream:
                    yield _Response(upstream, model)
                return
            finally:
                h.dispatcher.release(lease, replica_failed=failed)
        raise CallFailed(f"could not reach a replica of model {model!r} ({last_error})", retryable=True)


class PipelineModel:
    """A pipeline as app.py's VirtualModel: /v1/chat/completions only."""

    def __init__(self, handlers: GatewayHandlers, served: ServedPipeline) -> None:
        self.handlers = handlers
        self.served = served

    async def serve(
        self, request: Request, ticket: Ticket, parsed: ParsedBody, record: UsageRecord, result: RelayResult
    ) -> HttpResponse | StreamResponse:
        if request.path != "/v1/chat/completions":
            raise errors.bad_request(
                f"'{self.served.spec.name}' is a pipeline: call it with /v1/chat/completions.", param="model"
            )
        client = InternalModelClient(self.handlers, ticket.token_name, ticket.priority, ticket.threshold)
        stats = AnswerStats()
        try:
            return await serve_chat(self.served, request, parsed.payload, client, ticket.request_id, stats)
        except PipelineError as exc:
            raise errors.GatewayError(
                exc.status, exc.message, type=exc.type, code=exc.code, param=exc.node, headers=exc.headers
            ) from None
        finally:
            result.status, result.outcome = stats.status, stats.outcome
            result.prompt_tokens, result.completion_tokens = stats.prompt_tokens, stats.completion_tokens
            result.first_byte_at, result.complete = stats.first_byte_at, stats.complete
            record.queue_wait_ms = client.queue_wait_s * 1000


def _error_response(exc: PipelineError | errors.GatewayError, request_id: str) -> HttpResponse:
    if isinstance(exc, errors.GatewayError):
        return exc.response(request_id)
    return HttpResponse(
        status=exc.status, body=exc.body(), content_type="application/json", headers={**exc.headers, "x-request-id": request_id}
    )


class DataPrepRoutes:
    """POST /v1/dataprep/ingest, /get, /delete: bearer token, and that token named in the pipeline's ingest.tokens."""

    def __init__(self, handlers: GatewayHandlers, dataprep: DataPrep) -> None:
        self.handlers = handlers
        self.dataprep = dataprep
        pipelines = dataprep.runtime.pipelines.values()
        # The form is read before it says which pipeline it is for: cap it by the most generous pipeline.
        self.max_file_bytes = max(p.spec.ingest.max_file_bytes for p in pipelines)
        self.max_items = max(p.spec.ingest.max_files for p in pipelines)

    def _authorised(self, request: Request, served: ServedPipeline, principal) -> None:
        if principal.name not in served.spec.ingest.tokens:
            raise PipelineError(
                403, f"Token '{principal.name}' may not change the documents of pipeline '{served.spec.name}' "
                f"(pipelines[].ingest.tokens).", "permission_denied", "pipeline", type="invalid_request_error",
            )

    async def _json_body(self, request: Request) -> dict[str, Any]:
        raw = await request.read() if request.can_read_body else b""
        if not raw:
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(f"The request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise errors.bad_request("The request body must be a JSON object.")
        return body

    async def ingest(self, request: Request) -> HttpResponse:
        request_id = new_request_id()
        try:
            principal = self.handlers.tokens.authenticate(request.headers.get("Authorization"))
            if not any(principal.name in p.spec.ingest.tokens for p in self.dataprep.runtime.pipelines.values()):
                raise PipelineError(403, f"Token '{principal.name}' may not ingest into any pipeline (pipelines[].ingest.tokens).",
                                    "permission_denied", "pipeline", type="invalid_request_error")
            form = await read_ingest_form(request, self.max_file_bytes, self.max_items)
            served = self.dataprep.pipeline(form.pipeline or request.query.get("pipeline"))
            self._authorised(request, served, principal)
            client = InternalModelClient(self.handlers, principal.name, principal.priority, principal.threshold)
            answer = await self.dataprep.ingest(served, form, client)
        except (PipelineError, errors.GatewayError) as exc:
            return _error_response(exc, request_id)
        log.info("ingest", extra={"fields": {
            "request_id": request_id, "token": principal.name, "pipeline": served.spec.name,
            "documents": len(answer["documents"]), "chunks": sum(d["chunks"] for d in answer["documents"])}})
        return json_response(answer, headers={"x-request-id": request_id})

    async def _listing_or_delete(self, request: Request, delete: bool) -> HttpResponse:
        request_id = new_request_id()
        try:
            principal = self.handlers.tokens.authenticate(request.headers.get("Authorization"))
            body = await self._json_body(request) if request.method == "POST" else {}
            name = body.get("pipeline", request.query.get("pipeline"))
            retriever = body.get("retriever", request.query.get("retriever"))
            if name is not None and not isinstance(name, str) or retriever is not None and not isinstance(retriever, str):
                raise errors.bad_request("'pipeline' and 'retriever' must be strings.")
            served = self.dataprep.pipeline(name)
            self._authorised(request, served, principal)
            if delete:
                answer = await self.dataprep.delete(served, retriever, body.get("file_path"))
            else:
                answer = await self.dataprep.list(served, retriever)
        except (PipelineError, errors.GatewayError) as exc:
            return _error_response(exc, request_id)
        return json_response(answer, headers={"x-request-id": request_id})

    async def get(self, request: Request) -> HttpResponse:
        return await self._listing_or_delete(request, delete=False)

    async def delete(self, request: Request) -> HttpResponse:
        return await self._listing_or_delete(request, delete=True)


async def install_pipelines(router: Router, handlers: GatewayHandlers, spec: FlotillaSpec) -> PipelineRuntime:
    """Open the spec's pipelines (stores included), serve them as models, add the data prep routes.
    The caller closes the returned runtime at shutdown."""
    metrics = PipelineMetrics(handlers.metrics.registry)
    runtime = PipelineRuntime(spec, metrics, connect_timeout_s=spec.gateway.connect_timeout_s)
    await runtime.open()
    handlers.add_virtual_models({name: PipelineModel(handlers, served) for name, served in runtime.pipelines.items()})
    routes = DataPrepRoutes(handlers, DataPrep(runtime, metrics))
    router.add_post(DATAPREP_INGEST, routes.ingest)
    router.add_post("/v1/dataprep/get", routes.get)
    router.add_get("/v1/dataprep/get", routes.get)
    router.add_post("/v1/dataprep/delete", routes.delete)
    return runtime
