"""The gateway's HTTP front door: auth → admit → queue → dispatch → relay → account → release."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from flotilla.gateway import errors
from flotilla.gateway.auth import TokenCache
from flotilla.gateway.dispatch import Dispatcher, Lease, ModelUnavailable, QueueFull, QueueTimeout, Ticket
from flotilla.gateway.drain import DrainGate
from flotilla.gateway.metrics import GatewayMetrics
from flotilla.gateway.openapi import openapi_handler
from flotilla.gateway.prefix_blocks import prompt_blocks
from flotilla.gateway.relay import RelayResult, StreamRelay, relay_whole, whole_response
from flotilla.gateway.requests import ParsedBody, effective_priority, parse_body, upstream_body, vllm_priority_of
from flotilla.gateway.upstream import MID_STREAM, gateway_error, replica_at_fault, unreachable_error
from flotilla.gateway.usage_recorder import UsageRecorder
from flotilla.httpserver import (
    BodyError,
    BodyTooLarge,
    MethodNotAllowed,
    NotFound,
    Request,
    Response,
    Router,
    StreamResponse,
    json_response,
)
from flotilla.spec.models import ModelSpec
from flotilla.store import UsageRecord
from flotilla.store.records import token_count
from flotilla.transport import HttpClient, TransportError

log = logging.getLogger("flotilla.gateway")

# Request ids are UUID-shaped (some engines reject any other X-Request-Id): 72 random bits per
# process and a 48-bit counter, far cheaper than uuid4() per request. "%x" formatting, not a format
# spec: int.__format__ with a spec looks up locale data on every call.
_ID_RANDOM = os.urandom(9).hex()
_ID_HEAD = f"{_ID_RANDOM[:8]}-{_ID_RANDOM[8:12]}-4{_ID_RANDOM[12:15]}-8{_ID_RANDOM[15:18]}-"
_id_counter = itertools.count(1)


def new_request_id() -> str:
    return _ID_HEAD + "%012x" % (next(_id_counter) & 0xFFFFFFFFFFFF)


class VirtualModel(Protocol):
    """A name served like a model but not by engine replicas (a pipeline): it answers the request
    itself, filling `result` (and `record`) as it goes; the caller authorises and accounts as usual."""

    async def serve(
        self, request: Request, ticket: Ticket, parsed: ParsedBody, record: UsageRecord, result: RelayResult
    ) -> Response | StreamResponse: ...


@dataclass(frozen=True)
class ServedModel:
    spec: ModelSpec
    upstream_name: str
    upstream_headers: dict[str, str]
    vllm_priority: bool
    prefix_aware: bool = False  # tickets carry the prompt's prefix blocks for routing
    prefill: Any = None  # disagg.PrefillStep of a disaggregated model: runs before the decode replica's call


class GatewayHandlers:
    """Request handlers; collaborators are injected so each can be replaced (e.g. the dispatcher)."""

    def __init__(
        self,
        models: dict[str, ServedModel],
        tokens: TokenCache,
        dispatcher: Dispatcher,
        upstream: HttpClient,
        usage: UsageRecorder,
        metrics: GatewayMetrics,
        *,
        max_body_bytes: int,
        max_attempts: int,
        ready_check,
        body_timeout_s: float = 60.0,
    ) -> None:
        self.models = models
        self.tokens = tokens
        self.dispatcher = dispatcher
        self.upstream = upstream
        self.usage = usage
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.max_attempts = max_attempts
        self.ready_check = ready_check
        self.body_timeout_s = body_timeout_s
        self.virtual_models: dict[str, VirtualModel] = {}  # pipelines: served by a handler of their own
        self._created = int(time.time())
        self._models_body = self._models_list()

    def add_virtual_models(self, models: dict[str, VirtualModel]) -> None:
        """Serve these names like models (listed, authorised, queued, accounted) through their own `serve`."""
        self.virtual_models.update(models)
        self._models_body = self._models_list()

    def _model_names(self) -> list[str]:
        return [*self.models, *self.virtual_models]

    def _models_list(self) -> bytes:
        return orjson.dumps({"object": "list", "data": [self._model_card(n, self._created) for n in self._model_names()]})

    @staticmethod
    def _model_card(name: str, created: int) -> dict:
        return {"id": name, "object": "model", "created": created, "owned_by": "flotilla"}

    # --- OpenAI API -------------------------------------------------------------------------

    async def list_models(self, request: Request) -> Response:
        try:
            self.tokens.authenticate(request.headers.get("authorization"))
        except errors.GatewayError as exc:
            return exc.response()
        return Response(body=self._models_body, content_type="application/json")

    async def get_model(self, request: Request) -> Response:
        try:
            self.tokens.authenticate(request.headers.get("authorization"))
            name = request.match_info["model"]
            if name not in self.models and name not in self.virtual_models:
                raise errors.model_not_found(name, self._model_names())
        except errors.GatewayError as exc:
            return exc.response()
        return Response(body=orjson.dumps(self._model_card(name, self._created)), content_type="application/json")

    async def inference(self, request: Request) -> Response | StreamResponse:
        started = time.monotonic()
        # Always the gateway's own id: a client's X-Request-Id is never sent on (ids from different
        # tenants could collide at the engine, and usage rows are unique by request id).
        request_id = new_request_id()
        try:
            principal = self.tokens.authenticate(request.headers.get("authorization"))
            raw = self._body_now(request)
            if raw is None:
                raw = await self._read_body(request)
            parsed = parse_body(request.path, raw)
            served = self.models.get(parsed.model)
            virtual = self.virtual_models.get(parsed.model) if served is None else None
            if served is None and virtual is None:
                raise errors.model_not_found(parsed.model, self._model_names())
            priority = effective_priority(principal.priority, parsed.requested_priority)
            blocks, body = (), b""
            if served is not None:
                blocks = prompt_blocks(parsed.payload) if served.prefix_aware else ()
                body = upstream_body(
                    parsed, served.upstream_name, vllm_priority_of(priority) if served.vllm_priority else None,
                )
        except errors.GatewayError as exc:
            return exc.response(request_id)

        # A LoRA adapter waits in its base model's queue; a pipeline has a line of its own name.
        queue = served.spec.name if served is not None else parsed.model
        ticket = Ticket(request_id, queue, principal.name, priority, principal.threshold, started, blocks)
        record = UsageRecord(
            request_id=request_id, token_name=principal.name, model=parsed.model, replica=None,
            status_code=0, outcome="ok", stream=parsed.stream, prompt_tokens=None, completion_tokens=None,
            queue_wait_ms=None, ttft_ms=None, duration_ms=0.0,
        )
        result = RelayResult()
        try:
            if virtual is not None:
                response = await virtual.serve(request, ticket, parsed, record, result)
            else:
                response = await self._dispatch_and_relay(request, served, ticket, body, parsed, record, result)
        except errors.GatewayError as exc:
            result.status, result.outcome = exc.status, exc.code or "rejected"
            response = exc.response(request_id)
        except asyncio.CancelledError:
            if not result.complete:  # hung up before the answer was whole; 499 is nginx's code for it
                result.status, result.outcome = 499, "client_disconnected"
            raise
        finally:
            record.status_code, record.outcome = result.status, result.outcome
            # Engines are not trusted: an absurd count is clamped, a negative or non-integer one is unknown.
            record.prompt_tokens = token_count(result.prompt_tokens)
            record.completion_tokens = token_count(result.completion_tokens)
            ttft = None if result.first_byte_at is None else result.first_byte_at - started
            if ttft is not None:
                record.ttft_ms = ttft * 1000
            record.duration_ms = (time.monotonic() - started) * 1000
            self.metrics.observe_finished(
                queue, record.status_code, priority, ttft, record.prompt_tokens, record.completion_tokens
            )
            self.usage.record(record)
            self._log_request(record, priority)
        return response

    @staticmethod
    def _log_request(record: UsageRecord, priority: int) -> None:
        """Failures always, every request at debug level: one JSON line each, never a secret."""
        failed = record.outcome != "ok"
        if not failed and not log.isEnabledFor(logging.DEBUG):
            return
        fields = {
            "request_id": record.request_id, "token": record.token_name, "model": record.model,
            "replica": record.replica, "status": record.status_code, "outcome": record.outcome,
            "priority": priority, "stream": record.stream, "queue_wait_ms": record.queue_wait_ms,
            "duration_ms": round(record.duration_ms, 3),
        }
        log.log(logging.WARNING if failed else logging.DEBUG, "request", extra={"fields": fields})

    def _body_now(self, request: Request) -> bytes | None:
        """The body if it came whole with the head (the usual case) and needs no decoding; None: read it."""
        return request.read_now() if request.readable_now else None

    async def _read_body(self, request: Request) -> bytes:
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            raise errors.too_large(self.max_body_bytes)
        try:
            if request.body_complete:  # the usual case: the body came with the head; no timer needed
                return await request.read()
            async with asyncio.timeout(self.body_timeout_s):
                return await request.read()
        except BodyTooLarge:
            raise errors.too_large(self.max_body_bytes) from None
        except TimeoutError:
            raise errors.body_timeout(self.body_timeout_s) from None
        except BodyError as exc:  # e.g. a gzip/deflate body that does not decompress, a broken chunked body
            raise errors.undecodable_body(str(exc)) from None

    async def _acquire(self, ticket: Ticket, retry: bool) -> Lease:
        self.metrics.waiting.enter(ticket)  # for flotilla_queue_oldest_wait_seconds
        try:
            lease = await self.dispatcher.acquire(ticket, retry=retry)
        except QueueFull:
            raise errors.queue_full(ticket.token_name, ticket.model, ticket.threshold, retry_after_s=1) from None
        except QueueTimeout as exc:
            raise errors.queue_timeout(ticket.model, exc.waited_s) from None
        except ModelUnavailable as exc:
            raise errors.no_replica(ticket.model, str(exc)) from None
        finally:
            self.metrics.waiting.leave(ticket)
        self.metrics.observe_queue_wait(ticket.model, ticket.priority, lease.queue_wait_s)
        return lease

    async def _dispatch_and_relay(
        self, request, served: ServedModel, ticket: Ticket, body: bytes, parsed, record, result: RelayResult
    ) -> Response | StreamResponse:
        """Send the request once. Only a failure to connect (the engine provably never saw it) is
        tried again, on another replica; from the write on, the engine may be generating an answer
        and sending it again would make a hung engine compute the same prompt over and over."""
        headers = {"Content-Type": "application/json", "X-Request-Id": ticket.request_id, **served.upstream_headers}
        last_error = ""
        for attempt in range(self.max_attempts):
            lease = self.dispatcher.try_acquire(ticket) if attempt == 0 else None
            if lease is None:
                lease = await self._acquire(ticket, retry=attempt > 0)
            else:
                self.metrics.observe_queue_wait(ticket.model, ticket.priority, lease.queue_wait_s)
            if record.queue_wait_ms is None:
                record.queue_wait_ms = lease.queue_wait_s * 1000
            replica = lease.replica
            record.replica = replica.label
            failed = False
            try:
                if served.prefill is not None:
                    body = await served.prefill.run(ticket, request.path, body, headers)
                try:
                    upstream = await self.upstream.post(replica.url, request.path, body, headers)
                except TransportError as exc:
                    if not exc.retry_safe:
                        raise
                    failed = True
                    last_error = f"{replica.label}: {exc}"
                    self.metrics.observe_retry(served.spec.name)
                    continue
                try:
                    if parsed.stream and upstream.status == 200:
                        return await self._relay_stream(request, upstream, parsed, ticket.request_id, result)
                    if upstream.complete:  # the usual non-streamed answer: its body came with the head
                        return whole_response(upstream, upstream.read_now(), ticket.request_id, result)
                    return await relay_whole(upstream, ticket.request_id, result)
                finally:
                    upstream.release()
            except TransportError as exc:  # the client's response has not started: answer with an error
                failed = replica_at_fault(exc)  # no new work for it until its health check passes
                raise gateway_error(exc, served.spec.name, replica.label) from None
            finally:
                self.dispatcher.release(lease, replica_failed=failed or result.replica_failed)
        raise unreachable_error(served.spec.name, self.max_attempts, last_error)

    async def _relay_stream(self, request, upstream, parsed, request_id: str, result: RelayResult) -> StreamResponse:
        response = StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "x-request-id": request_id},
        )
        await response.prepare(request)
        # From here on the response has started: whatever fails ends the stream, never a second head.
        try:
            await StreamRelay(parsed.client_wants_usage, result).run(upstream, response)
        except Exception:
            log.exception("relay of request %s failed", request_id)
            result.status, result.outcome = 502, MID_STREAM
            try:
                await response.write(
                    errors.sse_error_event("The gateway failed in the middle of the stream.", "server_error", 500)
                    + b"data: [DONE]\n\n"
                )
            except ConnectionResetError:
                result.outcome = "client_disconnected"
        if result.outcome != "client_disconnected":
            try:
                await response.write_eof()
            except ConnectionResetError:
                if not result.complete:
                    result.outcome = "client_disconnected"
        return response

    # --- operations -------------------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        return json_response({"status": "live"})

    async def ready(self, request: Request) -> Response:
        ok, detail = self.ready_check()
        return Response(
            status=200 if ok else 503, body=orjson.dumps({"status": "ready" if ok else "not ready", **detail}),
            content_type="application/json",
        )

    async def prometheus(self, request: Request) -> Response:
        body = generate_latest(self.metrics.registry)
        return Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


class GatewayApp:
    """What the HTTP server calls for each request: the drain gate, the routes, and OpenAI-format
    answers for routing misses and unexpected failures (never HTML, never a traceback to the client).
    `cleanup` closes what the gateway opened, in reverse order."""

    def __init__(self, handlers: GatewayHandlers, gate: DrainGate) -> None:
        self.handlers = handlers
        self.gate = gate
        self.router = Router()
        self.cleanup_steps: list = []
        add_routes(self.router, handlers)

    async def __call__(self, request: Request) -> Response | StreamResponse:
        gate = self.gate
        if gate.draining:
            refusal = gate.refusal(request.path)
            if refusal is not None:
                return refusal
        gate.enter()
        try:
            return await self.router.resolve(request)(request)
        except NotFound:
            return errors.GatewayError(404, f"Unknown path: {request.path}", code="not_found").response()
        except MethodNotAllowed as exc:
            allowed = ", ".join(exc.allowed)
            return errors.GatewayError(
                405, f"Method {request.method} is not allowed on {request.path} (allowed: {allowed}).",
                code="method_not_allowed", headers={"Allow": allowed},  # RFC 9110 requires Allow on a 405
            ).response()
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return internal_error_response()
        finally:
            gate.leave()

    async def cleanup(self) -> None:
        for step in reversed(self.cleanup_steps):
            try:
                await step()
            except Exception:
                log.exception("error while shutting down")


def internal_error_response() -> Response:
    return errors.GatewayError(500, "Internal gateway error.", type="server_error", code="internal_error").response()


def add_routes(router: Router, handlers: GatewayHandlers) -> None:
    router.add_post("/v1/chat/completions", handlers.inference)
    router.add_post("/v1/completions", handlers.inference)
    router.add_post("/v1/embeddings", handlers.inference)
    router.add_get("/v1/models", handlers.list_models)
    router.add_get("/v1/models/{model}", handlers.get_model)
    router.add_get("/health/live", handlers.live)
    router.add_get("/health/ready", handlers.ready)
    router.add_get("/health", handlers.live)
    router.add_get("/metrics", handlers.prometheus)
    router.add_get("/openapi.json", openapi_handler(list(handlers.models)))
