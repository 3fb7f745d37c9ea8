"""Store tests run against real SQLite, PostgreSQL and MariaDB (the servers run on this machine).

Each server gets a fresh database per test session (flotilla_test_<random>), dropped at the end.
Point elsewhere with FLOTILLA_TEST_POSTGRES_URL / FLOTILLA_TEST_MARIADB_URL (an existing database
to connect to for CREATE DATABASE); deselect the servers with `-m "not db"`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomysql
import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from flotilla.store import Store

POSTGRES_ADMIN_URL = os.environ.get("FLOTILLA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN_URL = os.environ.get("FLOTILLA_TEST_MARIADB_URL", "mariadb://root@127.0.0.1:3306/test")

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.db),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.db),
]


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


async def _create_server_database(backend: str, name: str) -> str:
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


async def _drop_server_database(backend: str, name: str) -> None:
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
    url = await _create_server_database(backend, name)
    try:
        yield url
    finally:
        await _drop_server_database(backend, name)


@pytest.fixture(scope="session", params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database per backend for the whole session, migrated by the first Store.open."""
    backend: str = request.param
    name = f"flotilla_test_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / name}.db"
        return
    url = asyncio.run(_create_server_database(backend, name))
    try:
        yield url
    finally:
        asyncio.run(_drop_server_database(backend, name))


@pytest.fixture
def backend(backend_url: str) -> str:
    return make_url(backend_url).get_backend_name()


@pytest.fixture
async def store(backend_url: str) -> AsyncIterator[Store]:
    """A store on the session database, emptied of tokens and usage."""
    opened = await Store.open(backend_url)
    async with opened.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM flotilla_tokens"))
        await conn.execute(sa.text("DELETE FROM flotilla_usage"))
    try:
        yield opened
    finally:
        await opened.close()


async def _poll(condition: Callable[[], object], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Wait until `condition()` (sync, or returning an awaitable) is truthy; fail after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def poll() -> Callable[..., object]:
    return _poll


@pytest.fixture
def fresh_database_factory(tmp_path: Path) -> Callable[[str], object]:
    """`async with fresh_database_factory(backend) as url:` an empty database, dropped afterwards."""
    return lambda backend: fresh_database(backend, tmp_path)
