"""Async engines tuned per database: SQLite in WAL mode, UTC sessions on MySQL, short connect timeouts.

Every engine hides SQL parameters from logs and error messages (`hide_parameters`): they carry
token hashes. Calls are bounded in time by Store, with asyncio deadlines that work alike on every
driver (aiomysql has no read timeout of its own).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.util import await_

from flotilla.store.urls import is_sqlite_memory, sqlite_file

CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """WAL lets the gateway read tokens while usage batches are written (and `flotilla usage` runs).

    WAL is a property of the file: the first connection sets it for good. Switching needs the file
    to itself, and SQLite answers "database is locked" at once instead of waiting (busy_timeout does
    not apply) when another connection holds it, as when gateways start together while one of them
    migrates a new database. So look first, and retry the switch within the busy timeout.
    """
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # an in-memory database stays "memory": fine
            return
        except Exception as exc:  # the driver's OperationalError, as the async adapter raises it
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        _pause(0.05)


def _pause(seconds: float) -> None:
    # Connect events of an async engine run in SQLAlchemy's greenlet on the event loop: wait there
    # without blocking the loop; a plain (sync) caller just sleeps.
    try:
        await_(asyncio.sleep(seconds))
    except Exception:
        time.sleep(seconds)


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
