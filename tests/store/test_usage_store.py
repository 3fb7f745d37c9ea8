"""Usage rows on SQLite, PostgreSQL and MariaDB: batched writes, grouping, time windows."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from flotilla.store import Store, UsageRecord, UsageRejected

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def usage(
    token: str,
    model: str,
    *,
    outcome: str = "ok",
    status: int = 200,
    prompt: int | None = 10,
    completion: int | None = 20,
    ts: datetime = T0,
    request_id: str | None = None,
    stream: bool = False,
) -> UsageRecord:
    return UsageRecord(
        request_id=f"req-{next(_ids)}" if request_id is None else request_id,
        token_name=token,
        model=model,
        replica="chat-0",
        status_code=status,
        outcome=outcome,
        stream=stream,
        prompt_tokens=prompt,
        completion_tokens=completion,
        queue_wait_ms=1.5,
        ttft_ms=12.25,
        duration_ms=80.0,
        ts=ts,
    )


async def count_rows(store: Store) -> int:
    async with store.engine.connect() as conn:
        return (await conn.execute(sa.text("SELECT COUNT(*) FROM flotilla_usage"))).scalar_one()


async def test_a_batch_is_written_whole(store: Store) -> None:
    batch = [usage("alice", "chat", request_id=f"r{i}") for i in range(2000)]
    await store.write_usage(batch)
    await store.write_usage([])
    assert await count_rows(store) == 2000
    assert await store.usage_summary() == [
        {
            "token_name": "alice",
            "model": "chat",
            "requests": 2000,
            "errors": 0,
            "prompt_tokens": 20000,
            "completion_tokens": 40000,
        }
    ]


async def test_every_field_round_trips(store: Store) -> None:
    record = UsageRecord(
        "req-1",
        "alice",
        "chat",
        None,
        502,
        "upstream_error",
        True,
        None,
        None,
        None,
        None,
        3.25,
        ts=datetime(2025, 3, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
    )
    await store.write_usage([record])
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT request_id, token_name, model, replica, status_code, outcome, stream, prompt_tokens, "
                    "completion_tokens, queue_wait_ms, ttft_ms, duration_ms FROM flotilla_usage"
                )
            )
        ).one()
    assert tuple(row[:6]) == ("req-1", "alice", "chat", None, 502, "upstream_error")
    assert bool(row.stream) is True
    assert (row.prompt_tokens, row.completion_tokens, row.queue_wait_ms, row.ttft_ms) == (None, None, None, None)
    assert row.duration_ms == pytest.approx(3.25)
    # The timestamp is kept to the microsecond, in UTC, whatever zone it came in.
    exact = datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    assert await store.usage_summary(since=exact, until=exact + timedelta(microseconds=1), group_by=()) != []
    assert await store.usage_summary(since=exact + timedelta(microseconds=1), group_by=()) == []


async def test_summary_groups_and_counts_errors(store: Store) -> None:
    await store.write_usage(
        [
            usage("alice", "chat"),
            usage("alice", "chat", outcome="upstream_died_mid_stream", completion=5),
            usage("alice", "embed", prompt=7, completion=None),
            usage("bob", "chat", outcome="rejected", status=429, prompt=None, completion=None),
        ]
    )
    assert await store.usage_summary() == [
        {
            "token_name": "alice",
            "model": "chat",
            "requests": 2,
            "errors": 1,
            "prompt_tokens": 20,
            "completion_tokens": 25,
        },
        {
            "token_name": "alice",
            "model": "embed",
            "requests": 1,
            "errors": 0,
            "prompt_tokens": 7,
            "completion_tokens": 0,
        },
        {"token_name": "bob", "model": "chat", "requests": 1, "errors": 1, "prompt_tokens": 0, "completion_tokens": 0},
    ]
    by_model = await store.usage_summary(group_by=("model",))
    assert [(r["model"], r["requests"], r["errors"]) for r in by_model] == [("chat", 3, 2), ("embed", 1, 0)]
    by_outcome = await store.usage_summary(group_by=("outcome", "status_code"))
    assert {(r["outcome"], r["status_code"]): r["requests"] for r in by_outcome} == {
        ("ok", 200): 2,
        ("upstream_died_mid_stream", 200): 1,
        ("rejected", 429): 1,
    }
    [total] = await store.usage_summary(group_by=())
    assert total == {"requests": 4, "errors": 2, "prompt_tokens": 27, "completion_tokens": 25}


async def test_summary_time_window(store: Store) -> None:
    await store.write_usage(
        [
            usage("alice", "chat", ts=T0 - timedelta(days=2)),
            usage("alice", "chat", ts=T0 - timedelta(hours=1)),
            usage("alice", "chat", ts=T0),
            usage("alice", "chat", ts=T0 + timedelta(minutes=5)),
        ]
    )

    async def requests(**window: datetime) -> int:
        rows = await store.usage_summary(group_by=(), **window)
        return rows[0]["requests"] if rows else 0

    assert await requests() == 4
    assert await requests(since=T0 - timedelta(days=1)) == 3
    assert await requests(since=T0) == 2, "since is inclusive"
    assert await requests(until=T0) == 2, "until is exclusive"
    assert await requests(since=T0 - timedelta(hours=2), until=T0 + timedelta(minutes=1)) == 2
    # A naive boundary means UTC.
    assert await requests(since=T0.replace(tzinfo=None)) == 2
    assert await requests(since=T0 + timedelta(days=1)) == 0


async def test_summary_rejects_bad_arguments(store: Store) -> None:
    with pytest.raises(ValueError, match="cannot group usage by 'colour'"):
        await store.usage_summary(group_by=("token_name", "colour"))
    with pytest.raises(ValueError, match="starts .* after it ends"):
        await store.usage_summary(since=T0, until=T0 - timedelta(hours=1))


async def test_oversized_text_is_clipped_not_fatal(store: Store) -> None:
    await store.write_usage([usage("alice", "m" * 400, request_id="r" * 500), usage("bob", "chat")])
    rows = await store.usage_summary(group_by=("model",))
    assert sorted(len(r["model"]) for r in rows) == [4, 255]


async def test_non_finite_timings_are_stored_as_null(store: Store) -> None:
    record = usage("alice", "chat")
    record.ttft_ms = float("nan")
    record.queue_wait_ms = float("inf")
    await store.write_usage([record])
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT ttft_ms, queue_wait_ms FROM flotilla_usage"))).one()
    assert tuple(row) == (None, None)


async def test_content_the_database_refuses_raises_usage_rejected(store: Store) -> None:
    with pytest.raises(UsageRejected, match="refused"):
        await store.write_usage([usage("alice", "chat"), usage("alice", "bad-\ud800")])  # cannot be encoded
    assert await count_rows(store) == 0, "a refused batch is all-or-nothing"


@pytest.mark.parametrize(
    "reported, stored",
    [(2**63, 2**31 - 1), (2**40, 2**31 - 1), (-5, None), (3.0, 3), (2.5, None), ("12", None), (True, None),
     (float("nan"), None), (None, None), (7, 7)],
)
async def test_token_counts_are_clamped_or_unknown_never_fatal(store: Store, reported, stored) -> None:
    """Engines are not trusted: absurd counts are kept (clamped), meaningless ones become unknown."""
    record = usage("alice", "chat", prompt=reported, completion=reported)
    await store.write_usage([record, usage("bob", "chat")])
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text("SELECT prompt_tokens, completion_tokens FROM flotilla_usage WHERE token_name = 'alice'")
            )
        ).one()
    assert tuple(row) == (stored, stored)
    assert await count_rows(store) == 2


async def test_writing_a_batch_again_adds_nothing(store: Store) -> None:
    """A batch retried after its commit's acknowledgement was lost must not count twice."""
    batch = [usage("alice", "chat", request_id=f"again-{i}") for i in range(50)]
    await store.write_usage(batch)
    await store.write_usage(batch[10:] + [usage("alice", "chat", request_id="again-new")])
    assert await count_rows(store) == 51
    assert (await store.usage_summary())[0]["prompt_tokens"] == 510
