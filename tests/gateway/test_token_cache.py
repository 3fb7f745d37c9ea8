"""The token cache holds nothing a client sends, and follows secrets moving between tokens
within one refresh (issue 9: item 12)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from flotilla.gateway.auth import TokenCache
from flotilla.gateway.errors import GatewayError
from flotilla.spec.gateway import TokenSpec
from flotilla.store import Store


@pytest.fixture
async def store(tmp_path: Path):
    opened = await Store.open(f"sqlite:///{tmp_path}/tokens.db")
    await opened.bootstrap_tokens([TokenSpec(name="alice", token="alice-secret-1"),
                                   TokenSpec(name="bob", token="bob-secret-1")])
    try:
        yield opened
    finally:
        await opened.close()


async def test_junk_tokens_leave_no_trace_in_memory(store: Store) -> None:
    """9,999 junk 8 KB tokens used to be kept (+78 MB); now nothing per unknown secret is kept."""
    cache = TokenCache(store, refresh_s=3600)
    await cache.refresh()
    junk = [f"Bearer {i:06d}" + "j" * 8000 for i in range(2000)]
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for header in junk:
            with pytest.raises(GatewayError):
                cache.authenticate(header)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1_000_000, f"{after - before} bytes kept for 2,000 junk tokens (16 MB of them)"
    assert cache.authenticate("Bearer alice-secret-1").name == "alice"


async def test_secrets_swapped_within_one_refresh_are_both_accepted(store: Store) -> None:
    cache = TokenCache(store, refresh_s=3600)
    await cache.refresh()
    # alice takes bob's secret and bob a new one, all before the cache refreshes once.
    await store.set_token("bob", secret="bob-secret-2")
    await store.set_token("alice", secret="bob-secret-1")
    await store.set_token("bob", secret="alice-secret-1")
    await cache.refresh()
    assert cache.authenticate("Bearer bob-secret-1").name == "alice"
    assert cache.authenticate("Bearer alice-secret-1").name == "bob"
    with pytest.raises(GatewayError):
        cache.authenticate("Bearer bob-secret-2")


async def test_a_secret_moving_to_another_token_is_followed(store: Store) -> None:
    cache = TokenCache(store, refresh_s=3600)
    await cache.refresh()
    await store.set_token("alice", secret="alice-secret-2")
    await store.set_token("bob", secret="alice-secret-1")
    await cache.refresh()
    assert cache.authenticate("Bearer alice-secret-2").name == "alice"
    assert cache.authenticate("Bearer alice-secret-1").name == "bob"
    with pytest.raises(GatewayError):
        cache.authenticate("Bearer bob-secret-1")
