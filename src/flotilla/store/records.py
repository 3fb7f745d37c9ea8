"""What the store hands out and takes in: token records (never secrets) and usage records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


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
