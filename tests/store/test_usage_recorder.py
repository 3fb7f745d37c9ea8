"""UsageRecorder against a real store: background batches, flush on close, retry while the database fails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from flotilla.gateway.usage_recorder import UsageRecorder
from flotilla.store import Store, UsageRecord


def record(i: int, *, prompt: int = 1) -> UsageRecord:
    return UsageRecord(f"req-{i}", "alice", "chat", "chat-0", 200, "ok", False, prompt, 2, 0.5, 5.0, 9.0)


async def stored(store: Store) -> int:
    async with store.engine.connect() as conn:
        return (await conn.execute(sa.text("SELECT COUNT(*) FROM flotilla_usage"))).scalar_one()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite:///{tmp_path}/usage.db")
    try:
        yield store
    finally:
        await store.close()


async def hide_usage_table(store: Store) -> None:
    """Make writes fail for real (no such table) until restore_usage_table."""
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE flotilla_usage RENAME TO flotilla_usage_hidden"))


async def restore_usage_table(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE flotilla_usage_hidden RENAME TO flotilla_usage"))


async def test_background_task_flushes_on_its_interval(sqlite_store: Store, poll) -> None:
    recorder = UsageRecorder(sqlite_store, flush_interval_s=0.05)
    recorder.start()
    try:
        for i in range(10):
            recorder.record(record(i))
        assert recorder.pending == 10, "record() must not write on the caller's path"
        await poll(lambda: recorder.records_written == 10, what="the interval flush")
        assert await stored(sqlite_store) == 10
        assert recorder.pending == 0
    finally:
        await recorder.close()


async def test_a_full_batch_is_written_without_waiting_for_the_interval(sqlite_store: Store, poll) -> None:
    recorder = UsageRecorder(sqlite_store, flush_interval_s=3600, max_batch=50)
    recorder.start()
    try:
        for i in range(50):
            recorder.record(record(i))
        await poll(lambda: recorder.records_written == 50, what="the max_batch flush")
        assert recorder.batches_written == 1
    finally:
        await recorder.close()


async def test_close_writes_everything_in_batches(sqlite_store: Store) -> None:
    recorder = UsageRecorder(sqlite_store, flush_interval_s=3600, max_batch=100)
    for i in range(250):
        recorder.record(record(i))
    recorder.start()
    await recorder.close()
    assert await stored(sqlite_store) == 250
    assert (recorder.records_written, recorder.batches_written, recorder.pending) == (250, 3, 0)


async def test_failed_writes_are_retried_until_the_database_is_back(sqlite_store: Store, poll) -> None:
    await hide_usage_table(sqlite_store)
    recorder = UsageRecorder(sqlite_store, flush_interval_s=0.02)
    recorder.start()
    try:
        for i in range(5):
            recorder.record(record(i))
        await poll(lambda: recorder.write_failures >= 2, what="failed writes")
        assert recorder.pending == 5 and recorder.records_written == 0
        recorder.record(record(5))
        await restore_usage_table(sqlite_store)
        await poll(lambda: recorder.records_written == 6, what="the retried write")
    finally:
        await recorder.close()
    async with sqlite_store.engine.connect() as conn:
        ids = (await conn.execute(sa.text("SELECT request_id FROM flotilla_usage ORDER BY id"))).scalars().all()
    assert ids == [f"req-{i}" for i in range(6)], "order kept, nothing lost, nothing doubled"


async def test_a_failing_database_is_not_hammered(sqlite_store: Store, poll) -> None:
    """Full batches normally wake the writer at once; while writes fail, the backoff rules instead."""
    await hide_usage_table(sqlite_store)
    recorder = UsageRecorder(sqlite_store, flush_interval_s=0.05, max_batch=5)
    recorder.start()
    try:
        recorder.record(record(0))
        await poll(lambda: recorder.write_failures >= 1, what="the first failed write")
        for i in range(1, 200):
            recorder.record(record(i))
            await asyncio.sleep(0)
        await asyncio.sleep(0.3)
        # Backoff 0.1, 0.2, 0.4 s...: a handful of attempts, not one per record.
        assert recorder.write_failures < 10
        await restore_usage_table(sqlite_store)
    finally:
        await recorder.close()
    assert recorder.records_written == 200


async def test_over_the_bound_records_are_refused_loudly(sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await hide_usage_table(sqlite_store)
    recorder = UsageRecorder(sqlite_store, flush_interval_s=3600, max_batch=5, max_buffered=10)
    with caplog.at_level(logging.ERROR, logger="flotilla.usage"):
        for i in range(15):
            recorder.record(record(i))
    assert (recorder.pending, recorder.records_dropped) == (10, 5)
    assert any(
        "dropping usage records" in r.getMessage() and "full (10 records waiting)" in r.getMessage()
        for r in caplog.records
    )
    await restore_usage_table(sqlite_store)
    recorder.start()
    await recorder.close()
    assert await stored(sqlite_store) == 10


async def test_close_gives_up_loudly_when_the_database_stays_away(
    sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await hide_usage_table(sqlite_store)
    recorder = UsageRecorder(sqlite_store, flush_interval_s=0.01)
    recorder.record(record(0))
    with caplog.at_level(logging.ERROR, logger="flotilla.usage"):
        await recorder.close(timeout_s=0.2)
    assert recorder.pending == 1 and recorder.write_failures >= 1
    assert any("1 record(s) unwritten" in r.getMessage() for r in caplog.records)
    recorder.record(record(1))
    assert recorder.records_dropped == 1, "records after close are counted, not silently lost"


async def test_a_refused_record_is_isolated_and_the_rest_written(
    store: Store, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite refuses none of these values")
    recorder = UsageRecorder(store, flush_interval_s=3600, max_batch=8)
    for i in range(8):
        recorder.record(record(i, prompt=2**40 if i == 5 else 1))
    with caplog.at_level(logging.ERROR, logger="flotilla.usage"):
        await recorder.close()
    assert (recorder.records_written, recorder.records_rejected, recorder.pending) == (7, 1, 0)
    assert await stored(store) == 7
    assert any("req-5 rejected" in r.getMessage() for r in caplog.records)


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        UsageRecorder(None, max_batch=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flush_interval_s"):
        UsageRecorder(None, flush_interval_s=0)  # type: ignore[arg-type]
