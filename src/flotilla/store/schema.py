"""The store's tables as SQLAlchemy Core objects, for queries (the DDL lives in migrations/)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# Column sizes shared with the migration and with write_usage's clipping.
NAME_LEN = 64
HASH_LEN = 64
REQUEST_ID_LEN = 128
MODEL_LEN = 255
REPLICA_LEN = 255
OUTCOME_LEN = 32


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out on every backend.

    PostgreSQL keeps a timestamptz; SQLite and MySQL keep naive UTC (MySQL sessions are set to
    UTC on connect so that server-side NOW() agrees). Naive inputs are taken as UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

tokens = sa.Table(
    "flotilla_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(NAME_LEN), nullable=False),
    sa.Column("token_hash", sa.String(HASH_LEN), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("threshold", sa.Integer, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False),
    # Taken from token_revision under its row lock: see store/token_ops.py.
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("name", name="uq_flotilla_tokens_name"),
    sa.UniqueConstraint("token_hash", name="uq_flotilla_tokens_token_hash"),
    sa.Index("ix_flotilla_tokens_revision", "revision"),
)

# A single row (id=1) counting token changes; updating it serialises token writers.
token_revision = sa.Table(
    "flotilla_token_revision",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("value", sa.BigInteger, nullable=False),
)

usage = sa.Table(
    "flotilla_usage",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("request_id", sa.String(REQUEST_ID_LEN), nullable=False),
    sa.Column("token_name", sa.String(NAME_LEN), nullable=False),
    sa.Column("model", sa.String(MODEL_LEN), nullable=False),
    sa.Column("replica", sa.String(REPLICA_LEN), nullable=True),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(OUTCOME_LEN), nullable=False),
    sa.Column("stream", sa.Boolean, nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=True),
    sa.Column("completion_tokens", sa.Integer, nullable=True),
    sa.Column("queue_wait_ms", sa.Double, nullable=True),
    sa.Column("ttft_ms", sa.Double, nullable=True),
    sa.Column("duration_ms", sa.Double, nullable=False),
    sa.Index("ix_flotilla_usage_token_ts", "token_name", "ts"),
    sa.Index("ix_flotilla_usage_model_ts", "model", "ts"),
    sa.Index("ix_flotilla_usage_ts", "ts"),
    # One row per request: a batch written again (lost commit acknowledgement, spool replay) adds nothing.
    sa.Index("uq_flotilla_usage_request_id", "request_id", unique=True),
)
