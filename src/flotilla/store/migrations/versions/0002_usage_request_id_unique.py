"""One usage row per request: request_id becomes unique.

Rows written before this revision may share a request_id (the gateway used to take a client's
X-Request-Id as its own): every such row but the first gets '#<row id>' appended, so no usage
is lost and the unique index can be built.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_REQUEST_ID_LEN = 128  # the column's size in 0001
_usage = sa.table("flotilla_usage", sa.column("id", sa.BigInteger), sa.column("request_id", sa.String))


def _renumber_duplicates() -> None:
    bind = op.get_bind()
    earlier = sa.alias(_usage, "earlier")
    duplicates = bind.execute(
        sa.select(_usage.c.id, _usage.c.request_id).where(
            sa.exists().where(earlier.c.request_id == _usage.c.request_id, earlier.c.id < _usage.c.id)
        )
    ).all()
    for row_id, request_id in duplicates:
        suffix = f"#{row_id}"
        renamed = request_id[: _REQUEST_ID_LEN - len(suffix)] + suffix
        bind.execute(sa.update(_usage).where(_usage.c.id == row_id).values(request_id=renamed))


def upgrade() -> None:
    _renumber_duplicates()
    op.create_index("uq_flotilla_usage_request_id", "flotilla_usage", ["request_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_flotilla_usage_request_id", table_name="flotilla_usage")
