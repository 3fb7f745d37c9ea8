"""Token store on SQLite, PostgreSQL and MariaDB: bootstrap, CRUD, hashing at rest, change feed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest
import sqlalchemy as sa

from flotilla.spec.gateway import TokenSpec
from flotilla.store import (
    InvalidToken,
    Store,
    TokenConflict,
    TokenExists,
    TokenNotFound,
    TokenRecord,
    hash_token,
)


def spec_token(name: str, secret: str, priority: int = 1, threshold: int = 10) -> TokenSpec:
    return TokenSpec(name=name, token=secret, priority=priority, threshold=threshold)


def by_name(records: list[TokenRecord]) -> dict[str, TokenRecord]:
    return {r.name: r for r in records}


async def test_bootstrap_inserts_and_is_idempotent(store: Store) -> None:
    specs = [spec_token("staff", "staff-secret", 10, 50), spec_token("students", "student-secret", 1, 5)]
    await store.bootstrap_tokens(specs)
    first = by_name(await store.list_tokens())
    assert first["staff"] == TokenRecord("staff", hash_token("staff-secret"), 10, 50, False)
    assert first["students"] == TokenRecord("students", hash_token("student-secret"), 1, 5, False)

    _, watermark = await store.tokens_changed_since(None)
    await store.bootstrap_tokens(specs)
    changed, _ = await store.tokens_changed_since(watermark)
    assert changed == [], "re-bootstrapping the same spec must not touch any row"
    assert by_name(await store.list_tokens()) == first


async def test_bootstrap_updates_priority_threshold_and_secret(store: Store) -> None:
    await store.bootstrap_tokens([spec_token("staff", "staff-secret", 10, 50)])
    _, watermark = await store.tokens_changed_since(None)
    await store.bootstrap_tokens([spec_token("staff", "rotated-secret", 20, 60)])
    changed, _ = await store.tokens_changed_since(watermark)
    assert changed == [TokenRecord("staff", hash_token("rotated-secret"), 20, 60, False)]


async def test_bootstrap_keeps_a_revoked_token_revoked(store: Store) -> None:
    specs = [spec_token("staff", "staff-secret", 10, 50)]
    await store.bootstrap_tokens(specs)
    await store.revoke_token("staff")
    await store.bootstrap_tokens(specs)
    await store.bootstrap_tokens([spec_token("staff", "staff-secret", 11, 50)])
    [record] = await store.list_tokens()
    assert record.revoked and record.priority == 11
    await store.restore_token("staff")
    [record] = await store.list_tokens()
    assert not record.revoked


async def test_bootstrap_refuses_a_secret_stored_under_another_name(store: Store) -> None:
    await store.add_token("alice", 1, 1, secret="shared-secret")
    with pytest.raises(TokenConflict, match="'bob'.*'alice'"):
        await store.bootstrap_tokens([spec_token("bob", "shared-secret")])
    assert [r.name for r in await store.list_tokens()] == ["alice"]


async def test_add_list_revoke_set(store: Store) -> None:
    generated = await store.add_token("alice", 5, 3)
    assert generated.startswith("flt-")
    given = await store.add_token("bob", 2, 7, secret="bob-secret-1")
    assert given == "bob-secret-1"

    tokens = by_name(await store.list_tokens())
    assert tokens["alice"] == TokenRecord("alice", hash_token(generated), 5, 3, False)
    assert tokens["bob"].created_at is not None

    await store.revoke_token("bob")
    await store.revoke_token("bob")  # idempotent
    assert by_name(await store.list_tokens())["bob"].revoked

    await store.set_token("alice", priority=9)
    await store.set_token("alice", threshold=0, secret="alice-new-secret")
    assert by_name(await store.list_tokens())["alice"] == TokenRecord(
        "alice", hash_token("alice-new-secret"), 9, 0, False
    )
    await store.set_token("bob", priority=3)
    assert by_name(await store.list_tokens())["bob"].revoked, "set must not un-revoke"


async def test_secrets_are_stored_hashed(store: Store) -> None:
    secret = await store.add_token("alice", 1, 1)
    async with store.engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT * FROM flotilla_tokens WHERE name = 'alice'"))).mappings().one()
    assert row["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret in str(value) for value in row.values())


async def test_pepper_is_applied_at_rest(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOTILLA_TOKEN_PEPPER", "a-pepper")
    await store.add_token("alice", 1, 1, secret="alice-secret")
    [record] = await store.list_tokens()
    assert record.token_hash == hmac.new(b"a-pepper", b"alice-secret", hashlib.sha256).hexdigest()


async def test_duplicate_name_is_a_clear_error(store: Store) -> None:
    await store.add_token("alice", 1, 1)
    with pytest.raises(TokenExists, match="'alice' already exists"):
        await store.add_token("alice", 2, 2)


async def test_duplicate_secret_is_a_clear_error(store: Store) -> None:
    await store.add_token("alice", 1, 1, secret="same-secret")
    with pytest.raises(TokenConflict, match="already used by token 'alice'"):
        await store.add_token("bob", 1, 1, secret="same-secret")
    await store.add_token("bob", 1, 1, secret="other-secret")
    with pytest.raises(TokenConflict, match="already used by token 'alice'"):
        await store.set_token("bob", secret="same-secret")


async def test_unknown_token_is_a_clear_error(store: Store) -> None:
    with pytest.raises(TokenNotFound, match="no token named 'ghost'"):
        await store.revoke_token("ghost")
    with pytest.raises(TokenNotFound, match="no token named 'ghost'"):
        await store.set_token("ghost", priority=3)
    with pytest.raises(KeyError):  # TokenNotFound is KeyError-like for callers that expect one
        await store.restore_token("ghost")


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"name": "has space", "priority": 1, "threshold": 1}, "name: token name 'has space'"),
        ({"name": "ok", "priority": 1001, "threshold": 1}, r"priority: .*1000 \(got 1001\)"),
        ({"name": "ok", "priority": 1, "threshold": -1}, r"threshold: .*0 \(got -1\)"),
        ({"name": "ok", "priority": 1, "threshold": 1, "secret": "short"}, "secret: .*at least 8"),
    ],
)
async def test_bad_token_fields_are_named(store: Store, kwargs: dict, complaint: str) -> None:
    with pytest.raises(InvalidToken, match=complaint):
        await store.add_token(**kwargs)
    assert await store.list_tokens() == []


async def test_bad_secret_is_not_echoed(store: Store) -> None:
    with pytest.raises(InvalidToken) as caught:
        await store.add_token("alice", 1, 1, secret="tiny")
    assert "tiny" not in str(caught.value)


async def test_set_with_nothing_to_change(store: Store) -> None:
    await store.add_token("alice", 1, 1)
    with pytest.raises(ValueError, match="nothing to change"):
        await store.set_token("alice")


async def test_changed_since_sees_new_tokens_and_revocations(store: Store) -> None:
    await store.add_token("alice", 1, 1)
    everything, watermark = await store.tokens_changed_since(None)
    assert [r.name for r in everything] == ["alice"]

    nothing, same = await store.tokens_changed_since(watermark)
    assert nothing == [] and same == watermark

    await store.add_token("bob", 2, 2)
    await store.revoke_token("alice")
    changed, newer = await store.tokens_changed_since(watermark)
    assert {r.name: r.revoked for r in changed} == {"bob": False, "alice": True}
    assert newer != watermark
    assert (await store.tokens_changed_since(newer))[0] == []


async def test_changed_since_rejects_foreign_watermarks(store: Store) -> None:
    with pytest.raises(TypeError, match="watermark"):
        await store.tokens_changed_since("yesterday")


async def test_changed_since_misses_nothing_under_concurrent_writers(store: Store, backend_url: str) -> None:
    """Two writers (separate engines, as two CLI runs would be) race a poller; it must see every token."""
    other = await Store.open(backend_url)
    names = [f"user{i}" for i in range(30)]
    seen: set[str] = set()
    done = asyncio.Event()

    async def writer(target: Store, mine: list[str]) -> None:
        for name in mine:
            await target.add_token(name, 1, 1)

    async def poller() -> None:
        watermark = None
        while True:
            finished = done.is_set()
            changed, watermark = await store.tokens_changed_since(watermark)
            seen.update(r.name for r in changed)
            if finished:
                return

    try:
        poll_task = asyncio.create_task(poller())
        await asyncio.gather(writer(store, names[::2]), writer(other, names[1::2]))
        done.set()
        await asyncio.wait_for(poll_task, timeout=60)
    finally:
        await other.close()
    assert seen == set(names)
