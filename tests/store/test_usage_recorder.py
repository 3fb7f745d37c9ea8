"""UsageRecorder against a real store: background batches, flush on close, retry while the database fails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from flotilla.gateway.usage_recorder import UsageRecorder
from flotilla.gateway.usage_spool import UsageSpool
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
    recorder = UsageRecorder(sqlite_store, flush_interval_s=0.01)  # no spool file: the records are lost
    recorder.record(record(0))
    with caplog.at_level(logging.ERROR, logger="flotilla.usage"):
        await recorder.close(timeout_s=0.2)
    assert recorder.write_failures >= 1 and recorder.records_lost == 1
    assert any("1 record(s) unwritten and not spooled" in r.getMessage() for r in caplog.records)
    recorder.record(record(1))
    assert recorder.records_dropped == 1, "records after close are counted, not silently lost"
    assert recorder.records_lost == 2


async def test_a_refused_record_is_isolated_and_the_rest_written(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A record no database can take (a lone surrogate cannot be encoded) is set aside; its batch is written."""
    recorder = UsageRecorder(store, flush_interval_s=3600, max_batch=8)
    for i in range(8):
        rec = record(i)
        if i == 5:
            rec.model = "bad-\ud800"
        recorder.record(rec)
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


async def test_one_absurd_usage_value_does_not_poison_later_records(sqlite_store: Store, poll) -> None:
    """2**63 from an engine used to fail every batch it was in, forever: every later record was lost."""
    recorder = UsageRecorder(sqlite_store, flush_interval_s=0.02)
    recorder.start()
    try:
        recorder.record(record(0, prompt=2**63))
        for i in range(1, 6):
            recorder.record(record(i))
        await poll(lambda: recorder.records_written == 6, what="all six records written")
    finally:
        await recorder.close()
    assert recorder.write_failures == 0 and recorder.records_lost == 0
    async with sqlite_store.engine.connect() as conn:
        prompts = (await conn.execute(sa.text("SELECT prompt_tokens FROM flotilla_usage ORDER BY id"))).scalars().all()
    assert prompts == [2**31 - 1, 1, 1, 1, 1, 1]


@pytest.mark.parametrize("reported", [-3, "many", 1.5, float("inf")])
def test_meaningless_counts_become_unknown(reported) -> None:
    recorder = UsageRecorder(None, flush_interval_s=1)  # type: ignore[arg-type]
    recorder.record(record(0, prompt=reported))
    assert recorder._buffer[0].prompt_tokens is None


async def test_records_pending_at_stop_are_spooled_and_replayed_at_the_next_start(
    sqlite_store: Store, tmp_path: Path
) -> None:
    spool = UsageSpool(tmp_path / "spool.jsonl")
    await hide_usage_table(sqlite_store)  # the database refuses every write at stop
    first = UsageRecorder(sqlite_store, flush_interval_s=3600, spool=spool)
    first.start()
    for i in range(300):
        first.record(record(i))
    await first.close(timeout_s=0.3)
    assert (first.records_spooled, first.records_lost, first.records_written) == (300, 0, 0)
    assert spool.path.exists()

    await restore_usage_table(sqlite_store)
    second = UsageRecorder(sqlite_store, flush_interval_s=3600, spool=spool)
    await second.replay_spool()
    second.start()
    await second.close()
    assert second.records_replayed == 300 and not spool.path.exists()
    assert await stored(sqlite_store) == 300
    async with sqlite_store.engine.connect() as conn:
        ids = (await conn.execute(sa.text("SELECT request_id FROM flotilla_usage ORDER BY id"))).scalars().all()
    assert ids == [f"req-{i}" for i in range(300)]


async def test_a_replay_cut_short_keeps_the_file_and_never_counts_twice(sqlite_store: Store, tmp_path: Path) -> None:
    spool = UsageSpool(tmp_path / "spool.jsonl")
    await sqlite_store.write_usage([record(i) for i in range(5)])  # written once already (ack lost)
    spool.append([record(i) for i in range(10)])
    await hide_usage_table(sqlite_store)
    failing = UsageRecorder(sqlite_store, flush_interval_s=3600, spool=spool)
    await failing.replay_spool()
    assert spool.path.exists() and failing.records_replayed == 0
    await restore_usage_table(sqlite_store)
    await UsageRecorder(sqlite_store, flush_interval_s=3600, spool=spool).replay_spool()
    assert not spool.path.exists()
    assert await stored(sqlite_store) == 10


async def test_close_has_a_deadline_even_when_the_database_hangs(tmp_path: Path) -> None:
    """A MariaDB that accepts and never answers: close() returns at its deadline and spools the records."""
    async def silent(reader, writer):
        await reader.read()  # never answers; returns when the client goes away

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = await Store.open(f"mysql+aiomysql://u:p@127.0.0.1:{port}/db", migrate=False, timeout_s=0.5)
    spool = UsageSpool(tmp_path / "spool.jsonl")
    recorder = UsageRecorder(store, flush_interval_s=0.01, spool=spool)
    recorder.start()
    for i in range(20):
        recorder.record(record(i))
    try:
        async with asyncio.timeout(60):  # a hang guard, not a measurement: close's own deadline is 1 s
            await recorder.close(timeout_s=1.0)
        assert recorder.records_spooled == 20 and recorder.records_lost == 0
        assert recorder.write_failures >= 1
    finally:
        await store.close()
        server.close()
