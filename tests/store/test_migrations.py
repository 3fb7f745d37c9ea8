"""Schema migrations: idempotent, concurrent-safe, and SQLite set up for a gateway plus a CLI."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from flotilla.store import Store, StoreUnavailable
from flotilla.store.migrate import alembic_config, current_revision

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_open_twice_is_idempotent(backend_url: str) -> None:
    first = await Store.open(backend_url)
    await first.add_token("alice", 1, 1)
    await first.close()
    second = await Store.open(backend_url)
    try:
        assert await current_revision(second.engine) == HEAD
        assert "alice" in [r.name for r in await second.list_tokens()]
    finally:
        await second.close()


async def open_together(urls: list[str]) -> list[Store]:
    """Store.open on every URL at once; all stores are closed again if any open fails."""
    async with asyncio.timeout(120):
        results = await asyncio.gather(*(Store.open(url) for url in urls), return_exceptions=True)
    stores = [r for r in results if isinstance(r, Store)]
    failures = [r for r in results if not isinstance(r, Store)]
    if failures:
        for store in stores:
            await store.close()
        raise failures[0]
    return stores


async def test_concurrent_first_opens_on_an_empty_database(fresh_database_factory, backend: str) -> None:
    """Gateway replicas starting together must not trip over each other's migration."""
    async with fresh_database_factory(backend) as url:
        stores = await open_together([url] * 3)
        try:
            for store in stores:
                assert await current_revision(store.engine) == HEAD
            await stores[0].add_token("alice", 1, 1)
            assert [r.name for r in await stores[2].list_tokens()] == ["alice"]
        finally:
            for store in stores:
                await store.close()


async def test_concurrent_opens_of_different_databases(tmp_path: Path) -> None:
    stores = await open_together([f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"])
    try:
        for store in stores:
            assert await current_revision(store.engine) == HEAD
    finally:
        for store in stores:
            await store.close()


async def test_migrate_false_leaves_an_empty_database_alone(fresh_database_factory, backend: str) -> None:
    async with fresh_database_factory(backend) as url:
        store = await Store.open(url, migrate=False)
        try:
            assert await current_revision(store.engine) is None
            await store.ping()
        finally:
            await store.close()


async def test_sqlite_creates_parent_directories_and_uses_wal(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "flotilla.db"
    store = await Store.open(f"sqlite:///{db}")
    try:
        assert db.exists()
        async with store.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() >= 1000
    finally:
        await store.close()


async def test_sqlite_in_memory_keeps_its_data_across_operations() -> None:
    store = await Store.open("sqlite:///:memory:")
    try:
        await store.add_token("alice", 1, 1)
        assert [r.name for r in await store.list_tokens()] == ["alice"]
    finally:
        await store.close()


async def test_ping_and_open_fail_clearly_when_the_server_is_away() -> None:
    # Port 9 (discard) is closed here: connection refused, quickly.
    with pytest.raises(
        StoreUnavailable, match=r"cannot prepare the database postgresql\+asyncpg://u:\*\*\*@127.0.0.1:9/x"
    ):
        await Store.open("postgresql://u:secretpw@127.0.0.1:9/x")
    store = await Store.open("postgresql://u:secretpw@127.0.0.1:9/x", migrate=False)
    try:
        with pytest.raises(StoreUnavailable, match="unreachable") as caught:
            await store.ping()
        assert "secretpw" not in str(caught.value)
    finally:
        await store.close()


async def test_tables_and_indexes_exist(store: Store) -> None:
    def inspect(sync_conn: sa.Connection) -> dict[str, list[list[str]]]:
        inspector = sa.inspect(sync_conn)
        return {
            table: [idx["column_names"] for idx in inspector.get_indexes(table)]
            for table in ("flotilla_tokens", "flotilla_usage")
        }

    async with store.engine.connect() as conn:
        indexes = await conn.run_sync(inspect)
    assert ["token_name", "ts"] in indexes["flotilla_usage"]
    assert ["model", "ts"] in indexes["flotilla_usage"]
    assert ["revision"] in indexes["flotilla_tokens"]


async def test_usage_request_ids_become_unique_keeping_every_old_row(fresh_database_factory, backend: str) -> None:
    """Before 0002 a client's X-Request-Id could repeat; those rows are kept under distinct ids."""
    from alembic import command

    async with fresh_database_factory(backend) as url:
        store = await Store.open(url, migrate=False)
        try:
            async with store.engine.begin() as conn:
                await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0001"))
            async with store.engine.begin() as conn:
                for i, request_id in enumerate(["dup", "dup", "x" * 128, "x" * 128, "single"]):
                    await conn.execute(
                        sa.text(
                            "INSERT INTO flotilla_usage (ts, request_id, token_name, model, status_code, outcome, "
                            "stream, duration_ms) VALUES (:ts, :rid, 'alice', 'chat', 200, 'ok', :f, 1.0)"
                        ),
                        {"ts": datetime(2025, 1, 1, 0, 0, i), "rid": request_id, "f": False},
                    )
        finally:
            await store.close()
        store = await Store.open(url)
        try:
            async with store.engine.connect() as conn:
                ids = (await conn.execute(sa.text("SELECT request_id FROM flotilla_usage ORDER BY id"))).scalars().all()
            assert len(ids) == 5 and len(set(ids)) == 5
            assert ids[0] == "dup" and ids[1].startswith("dup#")
            assert ids[2] == "x" * 128 and len(ids[3]) == 128 and ids[3].startswith("x") and "#" in ids[3]
            assert (await store.usage_summary())[0]["requests"] == 5
        finally:
            await store.close()
