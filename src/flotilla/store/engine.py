"""Async engines tuned per database: SQLite in WAL mode, UTC sessions on MySQL, short connect timeouts.

Every engine hides SQL parameters from logs and error messages (`hide_parameters`): they carry
token hashes. Calls are bounded in time by Store, with asyncio deadlines that work alike on every
driver (aiomysql has no read timeout of its own).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from flotilla.store.urls import is_sqlite_memory, sqlite_file

CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets the gateway read tokens while usage batches are written (and `flotilla usage` runs).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def create_store_engine(url: URL) -> AsyncEngine:
    """An engine for an already normalised URL (see urls.normalise_database_url)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        return create_async_engine(
            url,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args={"timeout": CONNECT_TIMEOUT_S, "server_settings": {"application_name": "flotilla"}},
        )
    return create_async_engine(
        url,
        pool_pre_ping=True,
        hide_parameters=True,
        pool_recycle=3600,  # below MySQL's default wait_timeout, so idle connections are not cut under us
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "init_command": "SET time_zone = '+00:00'"},
    )


def _sqlite_engine(url: URL) -> AsyncEngine:
    if is_sqlite_memory(url):
        # One shared connection: every new connection to :memory: would be a new, empty database.
        engine = create_async_engine(
            url, poolclass=StaticPool, hide_parameters=True, connect_args={"check_same_thread": False}
        )
    else:
        path = sqlite_file(url)
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, hide_parameters=True, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine
