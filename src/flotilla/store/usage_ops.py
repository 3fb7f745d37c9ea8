"""Usage rows: batched idempotent inserts and the per-group report."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from flotilla.store.records import OUTCOME_OK, UsageRecord, finite_ms, token_count
from flotilla.store.schema import MODEL_LEN, NAME_LEN, OUTCOME_LEN, REPLICA_LEN, REQUEST_ID_LEN, usage

GROUPABLE = ("token_name", "model", "replica", "outcome", "status_code", "stream")


def usage_row(record: UsageRecord) -> dict[str, Any]:
    """A record as the table's columns, every value made safe to store."""
    return dict(zip(COLUMNS, _values(record, record.ts)))


COLUMNS = (
    "ts", "request_id", "token_name", "model", "replica", "status_code", "outcome", "stream",
    "prompt_tokens", "completion_tokens", "queue_wait_ms", "ttft_ms", "duration_ms",
)


def _values(record: UsageRecord, ts: Any, flag: Any = bool) -> tuple:
    # token_count and finite_ms let already-sane values through after one comparison (a row per request).
    r = record
    status = r.status_code
    return (
        ts,
        _clip(r.request_id, REQUEST_ID_LEN),
        _clip(r.token_name, NAME_LEN),
        _clip(r.model, MODEL_LEN),
        None if r.replica is None else _clip(r.replica, REPLICA_LEN),
        status if type(status) is int and 0 <= status < 1000 else 0,
        _clip(r.outcome, OUTCOME_LEN),
        flag(r.stream),
        token_count(r.prompt_tokens),
        token_count(r.completion_tokens),
        finite_ms(r.queue_wait_ms),
        finite_ms(r.ttft_ms),
        finite_ms(r.duration_ms) or 0.0,
    )


def _clip(text: Any, limit: int) -> str:
    # An oversized value would fail the whole batch on PostgreSQL/MySQL; a clipped one is still useful.
    if type(text) is not str:
        text = str(text)
    return text if len(text) <= limit else text[:limit]


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _naive_utc_text(moment: datetime) -> str:
    """How SQLAlchemy's DateTime keeps a moment in SQLite: naive UTC text, always with microseconds
    (so text order is time order and the table's readers parse it as they parse their own writes)."""
    # The aware form less its "+00:00": datetime.replace(tzinfo=None) parses keyword arguments and
    # cost more than the formatting itself.
    return _utc(moment).isoformat(" ", "microseconds")[:-6]


def _placeholders(dialect: str) -> str:
    if dialect == "postgresql":
        return ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))  # asyncpg's own style
    marker = "?" if dialect == "sqlite" else "%s"
    return ", ".join([marker] * len(COLUMNS))


def _insert_ignoring_duplicates(dialect: str, rows: int = 1) -> str:
    """INSERT of `rows` rows that skips those whose request_id is already stored (a batch retried
    after its commit was acknowledged but the acknowledgement lost), and fails on any other error."""
    values = ", ".join([f"({_placeholders(dialect)})"] * rows)
    head = f"INSERT INTO {usage.name} ({', '.join(COLUMNS)}) VALUES {values}"
    if dialect in ("postgresql", "sqlite"):
        return f"{head} ON CONFLICT (request_id) DO NOTHING"
    # MySQL/MariaDB: INSERT IGNORE would also turn out-of-range values into warnings; this only
    # turns a duplicate key into a no-op.
    return f"{head} ON DUPLICATE KEY UPDATE request_id = request_id"


_STATEMENTS = {dialect: _insert_ignoring_duplicates(dialect) for dialect in ("postgresql", "sqlite", "mysql")}

# SQLite runs in aiosqlite's thread, and Python's sqlite3 lets go of the GIL around every statement
# it steps: one statement per row would hand the GIL between that thread and the event loop's twice
# a row (thousands of thread switches a second at full load, each one a stall for requests). Rows
# go in statements of this many (64 x 13 values stays under SQLite's oldest limit of 999 variables).
SQLITE_ROWS_PER_STATEMENT = 64
_SQLITE_FULL = _insert_ignoring_duplicates("sqlite", SQLITE_ROWS_PER_STATEMENT)


def _sqlite_flag(value: Any) -> int:
    return 1 if value else 0  # what SQLAlchemy's Boolean stores on SQLite


# Python's sqlite3 binds an exact int, float or str directly; any other value (a bool, None) first
# goes through its adapter lookup, whose miss raises and clears an AttributeError inside: that cost
# more than the rest of the row's binding. Flags therefore go as ints, and None (NULL, about one
# per row) gets an identity adapter, which the lookup finds at once.
sqlite3.register_adapter(type(None), lambda value: value)


async def _insert_sqlite(conn: AsyncConnection, rows: list[tuple]) -> None:
    step = SQLITE_ROWS_PER_STATEMENT
    whole = len(rows) - len(rows) % step
    if whole:
        flat = itertools.chain.from_iterable
        await conn.exec_driver_sql(_SQLITE_FULL, [tuple(flat(rows[i : i + step])) for i in range(0, whole, step)])
    if whole < len(rows):
        rest = rows[whole:]
        statement = _STATEMENTS["sqlite"] if len(rest) == 1 else _insert_ignoring_duplicates("sqlite", len(rest))
        await conn.exec_driver_sql(statement, tuple(itertools.chain.from_iterable(rest)))


async def insert_many(conn: AsyncConnection, records: Sequence[UsageRecord]) -> None:
    """One executemany at the driver (on SQLite, of 64-row statements): the usage table is the
    gateway's hottest write (a row per request), and SQLAlchemy's per-value processing cost more
    than the database's own work. The
    values are what the columns' types would bind: aware UTC for PostgreSQL's timestamptz, naive
    UTC for MySQL's DATETIME(6), SQLAlchemy's own text form for SQLite."""
    if not records:
        return
    dialect = conn.dialect.name
    statement = _STATEMENTS.get(dialect, _STATEMENTS["mysql"])  # mariadb is a mysql dialect
    if dialect == "postgresql":
        rows = [_values(r, _utc(r.ts)) for r in records]
    elif dialect == "sqlite":
        await _insert_sqlite(conn, [_values(r, _naive_utc_text(r.ts), _sqlite_flag) for r in records])
        return
    else:
        rows = [_values(r, _utc(r.ts).replace(tzinfo=None)) for r in records]
    await conn.exec_driver_sql(statement, rows)


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
