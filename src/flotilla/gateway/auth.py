"""Bearer-token authentication from an in-memory copy of the token store.

The hot path never touches the database: the cache is loaded at start and refreshed with the
store's changes every `refresh_s` seconds, so revocations take effect within that window.
The cache holds one entry per stored token, keyed by the secret's hash: nothing a client sends
is kept (a secret is hashed on every request; SHA-256 of a header line costs about a microsecond).
The refresh doubles as the store's health check: while it fails, `store_reachable` is False
(readiness reports it) and a warning is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from flotilla.gateway.errors import unauthorized
from flotilla.gateway.metrics import OTHER_PRIORITY
from flotilla.gateway.tasks import cancel_and_wait
from flotilla.store import Store, TokenRecord, token_hasher

log = logging.getLogger("flotilla.gateway.auth")

UNREACHABLE_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    priority: int
    threshold: int


class TokenCache:
    def __init__(self, store: Store, refresh_s: float) -> None:
        self._store = store
        self._refresh_s = refresh_s
        self._by_hash: dict[str, Principal] = {}
        self._hash_by_name: dict[str, str] = {}
        self._watermark: object | None = None
        # Priorities of stored tokens, as metric label values: a set the operator controls.
        self._priority_labels: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._hash = token_hasher()  # the same hash the store keeps, pepper read once
        self.loaded = False
        self.store_reachable = True
        self._unreachable_logged_at = float("-inf")

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_loop(), name="token-cache-refresh")

    async def close(self) -> None:
        await cancel_and_wait(self._task)

    async def refresh(self) -> None:
        records, self._watermark = await self._store.tokens_changed_since(self._watermark)
        for record in records:
            self._apply(record)
        self.loaded = True

    def _apply(self, record: TokenRecord) -> None:
        old_hash = self._hash_by_name.pop(record.name, None)
        # Within one refresh, secrets may move between tokens (A takes B's, B takes a new one):
        # drop the old hash only while it still names this token, or B's change would erase A's.
        if old_hash is not None and (owner := self._by_hash.get(old_hash)) is not None and owner.name == record.name:
            del self._by_hash[old_hash]
        if not record.revoked:
            self._by_hash[record.token_hash] = Principal(record.name, record.priority, record.threshold)
            self._hash_by_name[record.name] = record.token_hash
        self._priority_labels.setdefault(record.priority, str(record.priority))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception as exc:  # keep serving with what we have; say so
                self._unreachable(exc)
            else:
                if not self.store_reachable:
                    log.warning("token store reachable again; readiness restored")
                self.store_reachable = True

    def _unreachable(self, exc: Exception) -> None:
        now = time.monotonic()
        if self.store_reachable or now - self._unreachable_logged_at >= UNREACHABLE_LOG_INTERVAL_S:
            log.warning(
                "token store unreachable (serving the last known tokens; readiness false until it answers): %s: %s",
                type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
            )
            self._unreachable_logged_at = now
        self.store_reachable = False

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise unauthorized("Missing bearer token: send the header 'Authorization: Bearer <token>'.")
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise unauthorized("The Authorization header must be 'Bearer <token>'.")
        principal = self._by_hash.get(self._hash(secret.strip()))
        if principal is None:
            raise unauthorized("Invalid or revoked API token.")
        return principal

    def priority_label(self, priority: int) -> str:
        """`priority` as a metrics label: itself when some token has it, else OTHER_PRIORITY."""
        return self._priority_labels.get(priority, OTHER_PRIORITY)

    def __len__(self) -> int:
        return len(self._by_hash)
