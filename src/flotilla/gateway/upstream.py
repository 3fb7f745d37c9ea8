"""The gateway's side of the engine transport, in one place: the client built from the spec, and
what each transport failure means to the gateway's client (status, OpenAI error code, usage
outcome, the text of a mid-stream error event).

The rule for retries lives in `flotilla.transport.errors`: only a failure to connect proves the
engine never saw the request; the handler tries another replica for that and for nothing else.
"""

from __future__ import annotations

import logging

from flotilla.gateway.errors import GatewayError
from flotilla.spec.gateway import GatewaySpec
from flotilla.transport import (
    ConnectError,
    FirstByteTimeout,
    HttpClient,
    IdleTimeout,
    Timeouts,
    TransportError,
)

log = logging.getLogger("flotilla.gateway")

#: The usage outcome of a stream that broke after it had started reaching the client.
MID_STREAM = "upstream_died_mid_stream"


def upstream_client(gateway: GatewaySpec) -> HttpClient:
    if gateway.upstream_timeout_s is not None:
        log.warning(
            "gateway.upstreamTimeoutS is deprecated and read as firstByteTimeoutS (%g s); "
            "streams are bounded by idleTimeoutS (%g s) between chunks instead of one whole-exchange timer",
            gateway.first_byte_timeout_s, gateway.idle_timeout_s,
        )
    return HttpClient(Timeouts(gateway.connect_timeout_s, gateway.first_byte_timeout_s, gateway.idle_timeout_s))


def _code_of(exc: TransportError) -> tuple[int, str]:
    if isinstance(exc, ConnectError):
        return 502, "upstream_unreachable"
    if isinstance(exc, (FirstByteTimeout, IdleTimeout)):
        return 504, "upstream_timeout"
    return 502, "upstream_broken"  # write, closed before answering, body cut off, not HTTP


def replica_at_fault(exc: TransportError) -> bool:
    """A failure of the connection itself (refused, reset, closed, not HTTP): the replica is routed
    around until its health check passes again. A timeout is not: a slow engine is not a dead one."""
    return not isinstance(exc, (FirstByteTimeout, IdleTimeout))


def gateway_error(exc: TransportError, model: str, replica: str) -> GatewayError:
    """The answer to the client when the exchange failed before the client's response started."""
    status, code = _code_of(exc)
    if isinstance(exc, ConnectError):
        message = f"Could not reach a replica of model '{model}' ({replica}: {exc})."
    elif status == 504:
        message = f"The engine of model '{model}' did not answer in time ({replica}: {exc})."
    else:
        message = f"The engine of model '{model}' failed to answer ({replica}: {exc})."
    return GatewayError(status, message, type="server_error", code=code)


def unreachable_error(model: str, attempts: int, last: str) -> GatewayError:
    return GatewayError(
        502, f"Could not reach a replica of model '{model}' after {attempts} attempts ({last}).",
        type="server_error", code="upstream_unreachable",
    )


def stream_failure_text(exc: TransportError) -> str:
    """Why a started stream ended early, for the error event that ends the client's stream."""
    return str(exc)
