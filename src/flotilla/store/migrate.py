"""Bring a database to the newest schema with the Alembic migrations shipped in this package.

Several gateway replicas may start at once against one database, so the upgrade runs under a
database-wide lock: an advisory lock on PostgreSQL, GET_LOCK on MySQL/MariaDB, and an immediate
(write-locking) transaction on SQLite. Within one process, upgrades also take turns: Alembic
keeps its migration context in module globals, so two upgrades interleaving on one event loop
(even of different databases) would run each other's operations.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from flotilla.store.errors import StoreUnavailable

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "flotilla_alembic_version"
_PG_LOCK_KEY = 0x466C6F74  # "Flot": any constant shared by all flotilla processes
_MYSQL_LOCK_NAME = "flotilla_migrations"
_MYSQL_LOCK_WAIT_S = 120
_process_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _process_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _process_locks.get(loop)
    if lock is None:
        lock = _process_locks[loop] = asyncio.Lock()
    return lock


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade_head(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


async def upgrade_to_head(engine: AsyncEngine) -> None:
    async with _process_lock():
        await _upgrade_under_database_lock(engine)


async def _upgrade_under_database_lock(engine: AsyncEngine) -> None:
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            await conn.run_sync(_upgrade_head)
    elif backend == "sqlite":
        async with engine.connect() as conn:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            await conn.run_sync(_upgrade_head)
            await conn.commit()
    else:
        async with engine.connect() as conn:
            got = (
                await conn.execute(
                    text("SELECT GET_LOCK(:name, :wait)"), {"name": _MYSQL_LOCK_NAME, "wait": _MYSQL_LOCK_WAIT_S}
                )
            ).scalar()
            if got != 1:
                raise StoreUnavailable(
                    f"waited {_MYSQL_LOCK_WAIT_S} s for another process to finish migrating the database; giving up"
                )
            try:
                await conn.run_sync(_upgrade_head)
                await conn.commit()
            finally:
                await conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _MYSQL_LOCK_NAME})
                await conn.commit()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema revision the database is at (None before the first migration)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current_revision)
