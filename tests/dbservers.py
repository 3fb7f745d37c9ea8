"""Fresh databases on the PostgreSQL and MariaDB servers of this machine (and SQLite files), for
any test that needs a real store: flotilla_test_<random>, dropped afterwards.

Point elsewhere with FLOTILLA_TEST_POSTGRES_URL / FLOTILLA_TEST_MARIADB_URL (an existing database
to connect to for CREATE DATABASE).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomysql
import asyncpg
import pytest
from sqlalchemy.engine import make_url

POSTGRES_ADMIN_URL = os.environ.get("FLOTILLA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN_URL = os.environ.get("FLOTILLA_TEST_MARIADB_URL", "mariadb://root@127.0.0.1:3306/test")


async def _admin_execute(backend: str, sql: str) -> None:
    """Run one statement as the server's admin user (CREATE/DROP DATABASE)."""
    admin = make_url(POSTGRES_ADMIN_URL if backend == "postgresql" else MARIADB_ADMIN_URL)
    if backend == "postgresql":
        conn = await asyncpg.connect(
            host=admin.host, port=admin.port or 5432, user=admin.username, password=admin.password,
            database=admin.database, timeout=15,
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
    else:
        conn = await aiomysql.connect(
            host=admin.host, port=admin.port or 3306, user=admin.username, password=admin.password or "",
            db=admin.database, connect_timeout=15,
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute(sql)
        finally:
            conn.close()


async def create_server_database(backend: str, name: str) -> str:
    admin = make_url(POSTGRES_ADMIN_URL if backend == "postgresql" else MARIADB_ADMIN_URL)
    sql = f'CREATE DATABASE "{name}"' if backend == "postgresql" else f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
    try:
        await _admin_execute(backend, sql)
    except (OSError, asyncpg.PostgresError, aiomysql.Error) as exc:
        pytest.fail(
            f"{backend} at {admin.render_as_string(hide_password=True)} is needed by the store tests and "
            f"answered: {exc} (deselect with -m 'not db')"
        )
    return admin.set(database=name).render_as_string(hide_password=False)


async def drop_server_database(backend: str, name: str) -> None:
    if backend == "postgresql":
        await _admin_execute(backend, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        await _admin_execute(backend, f"DROP DATABASE IF EXISTS `{name}`")


@asynccontextmanager
async def fresh_database(backend: str, tmp_dir: Path) -> AsyncIterator[str]:
    """A URL to an empty database of this kind, removed afterwards."""
    name = f"flotilla_test_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir / name}.db"
        return
    url = await create_server_database(backend, name)
    try:
        yield url
    finally:
        await drop_server_database(backend, name)


