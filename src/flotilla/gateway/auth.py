"""Bearer-token authentication from an in-memory copy of the token store.

The hot path never touches the database: the cache is loaded at start and refreshed with the
store's changes every `refresh_s` seconds, so revocations take effect within that window.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from flotilla.gateway.errors import unauthorized
from flotilla.gateway.tasks import cancel_and_wait
from flotilla.store import Store, TokenRecord, hash_token

log = logging.getLogger("flotilla.gateway.auth")


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
        # secret -> hash, so a known secret is not re-hashed per request; bounded against junk tokens.
        self._hash_of: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self.loaded = False

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
        if old_hash is not None:
            self._by_hash.pop(old_hash, None)
        if not record.revoked:
            self._by_hash[record.token_hash] = Principal(record.name, record.priority, record.threshold)
            self._hash_by_name[record.name] = record.token_hash

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception as exc:  # keep serving with what we have; say so
                log.warning("token cache refresh failed (serving the last known tokens): %s", exc)

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise unauthorized("Missing bearer token: send the header 'Authorization: Bearer <token>'.")
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise unauthorized("The Authorization header must be 'Bearer <token>'.")
        secret = secret.strip()
        digest = self._hash_of.get(secret)
        if digest is None:
            digest = hash_token(secret)
            if len(self._hash_of) >= 10_000:
                self._hash_of.clear()
            self._hash_of[secret] = digest
        principal = self._by_hash.get(digest)
        if principal is None:
            raise unauthorized("Invalid or revoked API token.")
        return principal

    def __len__(self) -> int:
        return len(self._by_hash)
