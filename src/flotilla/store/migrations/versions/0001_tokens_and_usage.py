"""Tokens, their change counter, and per-request usage.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Types are spelled out here, not imported from schema.py, so this file keeps meaning what it
# meant when it was written.
_TS = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_TS_SECONDS = sa.DateTime(timezone=True)
_NOW = sa.text("CURRENT_TIMESTAMP")
# Binary collation: names compare exactly as on PostgreSQL and SQLite ("Staff" is not "staff").
_MYSQL: dict[str, Any] = {
    f"{dialect}_{option}": value
    for dialect in ("mysql", "mariadb")
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}


def upgrade() -> None:
    op.create_table(
        "flotilla_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("threshold", sa.Integer, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("created_at", _TS_SECONDS, nullable=False, server_default=_NOW),
        sa.Column("updated_at", _TS_SECONDS, nullable=False, server_default=_NOW),
        sa.UniqueConstraint("name", name="uq_flotilla_tokens_name"),
        sa.UniqueConstraint("token_hash", name="uq_flotilla_tokens_token_hash"),
        **_MYSQL,
    )
    op.create_index("ix_flotilla_tokens_revision", "flotilla_tokens", ["revision"])

    revision_table = op.create_table(
        "flotilla_token_revision",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        **_MYSQL,
    )
    op.bulk_insert(revision_table, [{"id": 1, "value": 0}])

    op.create_table(
        "flotilla_usage",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("token_name", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("replica", sa.String(255), nullable=True),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=True),
        sa.Column("completion_tokens", sa.Integer, nullable=True),
        sa.Column("queue_wait_ms", sa.Double, nullable=True),
        sa.Column("ttft_ms", sa.Double, nullable=True),
        sa.Column("duration_ms", sa.Double, nullable=False),
        **_MYSQL,
    )
    op.create_index("ix_flotilla_usage_token_ts", "flotilla_usage", ["token_name", "ts"])
    op.create_index("ix_flotilla_usage_model_ts", "flotilla_usage", ["model", "ts"])
    op.create_index("ix_flotilla_usage_ts", "flotilla_usage", ["ts"])


def downgrade() -> None:
    op.drop_table("flotilla_usage")
    op.drop_table("flotilla_token_revision")
    op.drop_table("flotilla_tokens")
