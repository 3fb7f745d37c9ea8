"""Alembic environment for the token and usage store.

Migrations run through `flotilla.store.Store.open(url)`, which hands Alembic an open connection
(from an async engine, via `run_sync`) in `config.attributes["connection"]`.
"""

from __future__ import annotations

from alembic import context

from flotilla.store.migrate import VERSION_TABLE
from flotilla.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "flotilla's migrations need a live connection: they run from flotilla.store.Store.open(url), "
        "e.g. `flotilla tokens list --database URL` migrates the database as a side effect"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table instead
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
