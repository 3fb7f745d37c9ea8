"""What the store hands out and takes in: token records (never secrets) and usage records."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Token counts are stored as 32-bit integers (INTEGER on every backend).
MAX_TOKEN_COUNT = 2**31 - 1


@dataclass(frozen=True)
class TokenRecord:
    name: str
    token_hash: str
    priority: int
    threshold: int
    revoked: bool
    # Informational (listings); left out of equality so caches compare what matters for auth.
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class UsageRecord:
    """One request the gateway answered (or refused); written in batches by UsageRecorder."""

    request_id: str
    token_name: str
    model: str
    replica: str | None
    status_code: int
    outcome: str  # ok, upstream_error, client_disconnected, upstream_died_mid_stream, queue_timeout, rejected
    stream: bool
    prompt_tokens: int | None
    completion_tokens: int | None
    queue_wait_ms: float | None
    ttft_ms: float | None
    duration_ms: float
    ts: datetime = field(default_factory=_utc_now)


OUTCOME_OK = "ok"
_INF = float("inf")


def token_count(value: Any) -> int | None:
    """A token count as an engine reported it, made safe to add up and store.

    Engines are not trusted: a count that is not a whole number (a string, a bool, 2.5, NaN) or is
    negative means "unknown" (None); one beyond what a column holds (2**63) is clamped to
    MAX_TOKEN_COUNT, so the record is kept and visibly absurd rather than lost.
    """
    if type(value) is int and 0 <= value <= MAX_TOKEN_COUNT:  # the usual case, first
        return value
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    if not isinstance(value, int) or value < 0:
        return None
    return min(value, MAX_TOKEN_COUNT)


def finite_ms(value: Any) -> float | None:
    """A duration in milliseconds, or None when it is not a finite non-negative number."""
    if type(value) is float and 0.0 <= value < _INF:  # the usual case, first (NaN fails the comparison)
        return value
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def sanitized(record: UsageRecord) -> UsageRecord:
    """`record` with every number in range (fixed in place, and returned)."""
    status, duration = record.status_code, record.duration_ms
    if (
        type(status) is int and 0 <= status < 1000 and type(duration) is float and 0.0 <= duration < _INF
        and _sane_count(record.prompt_tokens) and _sane_count(record.completion_tokens)
        and _sane_ms(record.queue_wait_ms) and _sane_ms(record.ttft_ms)
    ):
        return record  # the usual record, as the gateway fills it: nothing to fix
    record.prompt_tokens = token_count(record.prompt_tokens)
    record.completion_tokens = token_count(record.completion_tokens)
    record.queue_wait_ms = finite_ms(record.queue_wait_ms)
    record.ttft_ms = finite_ms(record.ttft_ms)
    record.duration_ms = finite_ms(record.duration_ms) or 0.0
    status = record.status_code
    record.status_code = status if isinstance(status, int) and not isinstance(status, bool) and 0 <= status < 1000 else 0
    return record


def _sane_count(value: Any) -> bool:
    return value is None or (type(value) is int and 0 <= value <= MAX_TOKEN_COUNT)


def _sane_ms(value: Any) -> bool:
    return value is None or (type(value) is float and 0.0 <= value < _INF)
