"""Usage rows: batched idempotent inserts and the per-group report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from flotilla.store.records import OUTCOME_OK, UsageRecord, finite_ms, token_count
from flotilla.store.schema import MODEL_LEN, NAME_LEN, OUTCOME_LEN, REPLICA_LEN, REQUEST_ID_LEN, usage

GROUPABLE = ("token_name", "model", "replica", "outcome", "status_code", "stream")


def _clip(text: str, limit: int) -> str:
    # An oversized value would fail the whole batch on PostgreSQL/MySQL; a clipped one is still useful.
    return text if len(text) <= limit else text[:limit]


def usage_row(record: UsageRecord) -> dict[str, Any]:
    return {
        "ts": record.ts,
        "request_id": _clip(str(record.request_id), REQUEST_ID_LEN),
        "token_name": _clip(str(record.token_name), NAME_LEN),
        "model": _clip(str(record.model), MODEL_LEN),
        "replica": None if record.replica is None else _clip(str(record.replica), REPLICA_LEN),
        "status_code": int(record.status_code) if 0 <= int(record.status_code) < 1000 else 0,
        "outcome": _clip(str(record.outcome), OUTCOME_LEN),
        "stream": bool(record.stream),
        "prompt_tokens": token_count(record.prompt_tokens),
        "completion_tokens": token_count(record.completion_tokens),
        "queue_wait_ms": finite_ms(record.queue_wait_ms),
        "ttft_ms": finite_ms(record.ttft_ms),
        "duration_ms": finite_ms(record.duration_ms) or 0.0,
    }


def _insert_ignoring_duplicates(dialect: str) -> Any:
    """INSERT that skips rows whose request_id is already stored (a batch retried after its commit
    was acknowledged but the acknowledgement lost), and fails on any other error as usual."""
    if dialect == "postgresql":
        return postgresql.insert(usage).on_conflict_do_nothing(index_elements=["request_id"])
    if dialect == "sqlite":
        return sqlite.insert(usage).on_conflict_do_nothing(index_elements=["request_id"])
    # MySQL/MariaDB: INSERT IGNORE would also turn out-of-range values into warnings; this only
    # turns a duplicate key into a no-op.
    statement = mysql.insert(usage)
    return statement.on_duplicate_key_update(request_id=statement.inserted.request_id)


async def insert_many(conn: AsyncConnection, records: Sequence[UsageRecord]) -> None:
    if records:
        await conn.execute(_insert_ignoring_duplicates(conn.dialect.name), [usage_row(r) for r in records])


async def summary(
    conn: AsyncConnection,
    since: datetime | None,
    until: datetime | None,
    group_by: Sequence[str],
) -> list[dict[str, Any]]:
    """Requests, errors (outcome other than "ok"), prompt and completion tokens per group."""
    unknown = [key for key in group_by if key not in GROUPABLE]
    if unknown:
        raise ValueError(f"cannot group usage by {', '.join(map(repr, unknown))}; choose from {', '.join(GROUPABLE)}")
    if since is not None and until is not None and since > until:
        raise ValueError(f"the report starts ({since.isoformat()}) after it ends ({until.isoformat()})")
    keys = [usage.c[key] for key in group_by]
    query = sa.select(
        *keys,
        sa.func.count().label("requests"),
        sa.func.coalesce(sa.func.sum(sa.case((usage.c.outcome != OUTCOME_OK, 1), else_=0)), 0).label("errors"),
        sa.func.coalesce(sa.func.sum(usage.c.prompt_tokens), 0).label("prompt_tokens"),
        sa.func.coalesce(sa.func.sum(usage.c.completion_tokens), 0).label("completion_tokens"),
    )
    if since is not None:
        query = query.where(usage.c.ts >= since)
    if until is not None:
        query = query.where(usage.c.ts < until)
    if keys:
        query = query.group_by(*keys).order_by(*keys)
    result = []
    for row in await conn.execute(query):
        if not row._mapping["requests"]:
            continue  # an ungrouped query over no rows still yields one all-zero row
        item = {key: row._mapping[key] for key in group_by}
        if "stream" in item:
            item["stream"] = bool(item["stream"])
        for total in ("requests", "errors", "prompt_tokens", "completion_tokens"):
            item[total] = int(row._mapping[total])  # SUM comes back as Decimal on PostgreSQL and MySQL
        result.append(item)
    return result
