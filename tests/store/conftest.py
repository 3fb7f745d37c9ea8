"""Store tests run against real SQLite, PostgreSQL and MariaDB (the servers run on this machine).

Each server gets a fresh database per test session (flotilla_test_<random>), dropped at the end.
Point elsewhere with FLOTILLA_TEST_POSTGRES_URL / FLOTILLA_TEST_MARIADB_URL (an existing database
to connect to for CREATE DATABASE); deselect the servers with `-m "not db"`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dbservers import create_server_database, drop_server_database, fresh_database
from sqlalchemy.engine import make_url

from flotilla.store import Store

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.db),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.db),
]


@pytest.fixture(scope="session", params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database per backend for the whole session, migrated by the first Store.open."""
    backend: str = request.param
    name = f"flotilla_test_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / name}.db"
        return
    url = asyncio.run(create_server_database(backend, name))
    try:
        yield url
    finally:
        asyncio.run(drop_server_database(backend, name))


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
