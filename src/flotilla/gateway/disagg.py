"""Disaggregated prefill/decode: the prefill step before a request goes to its decode replica.

The protocol is vLLM's (its NixlConnector proxy, tests/v1/kv_connector/nixl_integration):
the request goes to a prefill replica as a non-streaming one-token generation with
`kv_transfer_params: {do_remote_decode: true, ...}`; the prefill answers with the
`kv_transfer_params` the decode side needs to pull the KV cache (remote engine id, block ids,
host, port); the original request then goes to a decode replica with those parameters.

The gateway holds the decode slot first (the request waits in the model's priority queue), then
takes a slot on a prefill replica (NAME@prefill pool) just for the prefill.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from flotilla.gateway import errors
from flotilla.gateway.dispatch import Dispatcher, ModelUnavailable, QueueFull, QueueTimeout, Ticket
from flotilla.gateway.replica_groups import prefill_pool_name
from flotilla.gateway.upstream import replica_at_fault
from flotilla.transport import HttpClient, TransportError

log = logging.getLogger("flotilla.gateway.disagg")

# What the prefill side is told: compute the KV cache and keep it for a remote decode.
PREFILL_KV_PARAMS = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}
# Fields the prefill side does not take (vLLM's proxy drops them, and restores them for decode).
_NOT_FOR_PREFILL = ("stream_options", "min_tokens", "min_completion_tokens")


def prefill_body(payload: dict) -> bytes:
    body = {k: v for k, v in payload.items() if k not in _NOT_FOR_PREFILL}
    body["kv_transfer_params"] = dict(PREFILL_KV_PARAMS)
    body["stream"] = False
    body["max_tokens"] = 1
    if "max_completion_tokens" in body:
        body["max_completion_tokens"] = 1
    return orjson.dumps(body)


def decode_body(payload: dict, kv_transfer_params: dict | None) -> bytes:
    if not kv_transfer_params:
        return orjson.dumps(payload)
    return orjson.dumps({**payload, "kv_transfer_params": kv_transfer_params})


@dataclass
class PrefillStep:
    model: str
    dispatcher: Dispatcher
    upstream: HttpClient
    max_attempts: int = 3

    async def run(self, ticket: Ticket, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        """Prefill on a prefill replica; the body for the decode replica."""
        payload = orjson.loads(body)
        request = prefill_body(payload)
        prefill_ticket = Ticket(ticket.request_id, prefill_pool_name(self.model), ticket.token_name,
                                ticket.priority, ticket.threshold)
        last_error = ""
        for attempt in range(self.max_attempts):
            try:
                lease = await self.dispatcher.acquire(prefill_ticket, retry=attempt > 0)
            except (QueueFull, QueueTimeout, ModelUnavailable) as exc:
                raise errors.no_replica(prefill_pool_name(self.model), str(exc) or type(exc).__name__) from None
            failed = False
            try:
                try:
                    response = await self.upstream.post(lease.replica.url, path, request, headers)
                    async with response:
                        raw = await response.read()
                        status = response.status
                except TransportError as exc:
                    failed = replica_at_fault(exc)
                    if exc.retry_safe:  # never reached the engine: another prefill replica may
                        last_error = f"{lease.replica.label}: {exc}"
                        continue
                    raise errors.GatewayError(
                        502, f"The prefill replica of '{self.model}' failed to answer ({exc}).",
                        type="server_error", code="prefill_failed",
                    ) from None
            finally:
                self.dispatcher.release(lease, replica_failed=failed)
            if status != 200:
                raise errors.GatewayError(
                    status if 400 <= status < 500 else 502,
                    f"The prefill replica of '{self.model}' answered {status}: {raw[:300].decode(errors='replace')}",
                    type="server_error" if status >= 500 else "invalid_request_error", code="prefill_failed",
                )
            try:
                params = orjson.loads(raw).get("kv_transfer_params")
            except (orjson.JSONDecodeError, AttributeError):
                raise errors.GatewayError(502, f"The prefill replica of '{self.model}' did not answer JSON.",
                                          type="server_error", code="prefill_failed") from None
            if not params:
                # Decode would compute the whole prompt again: correct, but the disaggregation is lost.
                log.warning("prefill replica %s of %s returned no kv_transfer_params", lease.replica.label, self.model)
            return decode_body(payload, params)
        raise errors.GatewayError(502, f"Could not reach a prefill replica of '{self.model}' ({last_error}).",
                                  type="server_error", code="upstream_unreachable")
