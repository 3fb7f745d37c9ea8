"""The token and usage store: one async SQLAlchemy engine, one transaction per operation.

Every call has a deadline (`timeout_s`): a database that accepts connections and never answers
makes a call fail with StoreUnavailable instead of hanging (aiomysql has no read timeout of its
own, and a hung TCP peer is never noticed by the kernel). A call cut by its deadline may or may not
have committed: usage writes are idempotent (unique request_id), token writes are safe to repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from alembic.util.exc import CommandError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from flotilla.spec.gateway import TokenSpec
from flotilla.store import token_ops, usage_ops
from flotilla.store.engine import create_store_engine
from flotilla.store.errors import StoreUnavailable, TokenConflict, UsageRejected
from flotilla.store.hashing import generate_secret
from flotilla.store.migrate import upgrade_to_head
from flotilla.store.records import TokenRecord, UsageRecord
from flotilla.store.urls import normalise_database_url, safe_url

PING_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 15.0
REPORT_TIMEOUT_S = 300.0  # usage summaries scan many rows
# Migrations may wait for another process's migration lock (store/migrate.py) before their own work.
MIGRATION_TIMEOUT_S = 300.0


class Store:
    """Tokens (hashed) and per-request usage in SQLite, PostgreSQL or MySQL/MariaDB.

    Open with `await Store.open(url)`; every method is safe to call concurrently from one event loop.
    """

    def __init__(self, engine: AsyncEngine, *, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self._engine = engine
        self._timeout_s = timeout_s

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True, timeout_s: float = CALL_TIMEOUT_S) -> Store:
        """Connect to `url` (see urls.normalise_database_url) and, by default, migrate it to the newest schema.

        When migrating, the database must answer a first query within PING_TIMEOUT_S (else StoreUnavailable).
        """
        parsed = normalise_database_url(url)
        try:
            engine = create_store_engine(parsed)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the database {safe_url(parsed)}: {exc}") from exc
        store = cls(engine, timeout_s=timeout_s)
        if not migrate:
            return store
        try:
            # A first short-bounded contact: a server that accepts and never answers fails here, fast.
            try:
                async with asyncio.timeout(PING_TIMEOUT_S), engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
            except TimeoutError:
                raise StoreUnavailable(f"no answer to a first query within {PING_TIMEOUT_S:g} s") from None
            try:
                async with asyncio.timeout(MIGRATION_TIMEOUT_S):
                    await upgrade_to_head(engine)
            except TimeoutError:
                raise StoreUnavailable(f"the migration did not finish within {MIGRATION_TIMEOUT_S:g} s") from None
        except BaseException as exc:
            await store.close()
            if isinstance(exc, (SQLAlchemyError, OSError, CommandError)) or type(exc) is StoreUnavailable:
                raise StoreUnavailable(f"cannot prepare the database {store.url}: {_reason(exc)}") from exc
            raise
        return store

    @contextlib.asynccontextmanager
    async def _deadline(self, what: str, timeout_s: float | None = None) -> AsyncIterator[None]:
        """Bound one database call; a call past its deadline raises StoreUnavailable naming it."""
        limit = self._timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit):
                yield
        except TimeoutError:
            raise StoreUnavailable(f"database {self.url} did not answer {what} within {limit:g} s") from None

    @property
    def url(self) -> str:
        """The database URL with its password masked."""
        return safe_url(self._engine.url)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def close(self) -> None:
        """Close the pool; connections a hung server holds are abandoned after the deadline."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._engine.dispose()
        except TimeoutError:
            await self._engine.dispose(close=False)

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers a trivial query within PING_TIMEOUT_S."""
        try:
            async with self._deadline("a ping", PING_TIMEOUT_S):
                async with self._engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable(f"database {self.url} is unreachable: {_reason(exc)}") from exc

    # Tokens

    async def bootstrap_tokens(self, tokens: Sequence[TokenSpec]) -> None:
        """Make the store agree with the spec's tokens; idempotent. See token_ops.bootstrap for the rules."""
        async with self._deadline("while storing the spec's tokens"), self._engine.begin() as conn:
            try:
                await token_ops.bootstrap(conn, tokens)
            except IntegrityError as exc:
                raise TokenConflict(f"spec tokens clash with stored ones: {_reason(exc)}") from exc

    async def add_token(self, name: str, priority: int, threshold: int, secret: str | None = None) -> str:
        """Store a new token and return its secret (a fresh 'flt-…' one when none is given)."""
        secret = generate_secret() if secret is None else secret
        token_ops.validate_token_fields(name, priority, threshold, secret)
        async with self._deadline("while adding a token"), self._engine.begin() as conn:
            await token_ops.add(conn, name, priority, threshold, secret)
        return secret

    async def list_tokens(self) -> list[TokenRecord]:
        async with self._deadline("while listing tokens"), self._engine.connect() as conn:
            return await token_ops.list_all(conn)

    async def revoke_token(self, name: str) -> None:
        """Revoke `name` (idempotent); raises TokenNotFound. Spec bootstraps never undo this."""
        async with self._deadline("while revoking a token"), self._engine.begin() as conn:
            await token_ops.update(conn, name, revoked=True)

    async def restore_token(self, name: str) -> None:
        """Undo a revocation; raises TokenNotFound."""
        async with self._deadline("while restoring a token"), self._engine.begin() as conn:
            await token_ops.update(conn, name, revoked=False)

    async def set_token(
        self, name: str, *, priority: int | None = None, threshold: int | None = None, secret: str | None = None
    ) -> None:
        """Change a token's priority, threshold or secret; raises TokenNotFound. Revocation is unchanged."""
        if priority is None and threshold is None and secret is None:
            raise ValueError(f"nothing to change for token {name!r}: give a priority, a threshold or a secret")
        token_ops.validate_token_fields(name, priority, threshold, secret)
        async with self._deadline("while changing a token"), self._engine.begin() as conn:
            await token_ops.update(conn, name, priority=priority, threshold=threshold, secret=secret)

    async def tokens_changed_since(self, watermark: object | None) -> tuple[list[TokenRecord], object]:
        """Tokens (revoked ones included) changed after `watermark` (None: all), and the next watermark.

        The watermark is an int revision (see token_ops); one indexed range query per call.
        """
        async with self._deadline("while reading token changes"), self._engine.connect() as conn:
            return await token_ops.changed_since(conn, watermark)

    # Usage

    async def write_usage(self, records: Sequence[UsageRecord]) -> None:
        """Insert all records in one batched statement (executemany) and one transaction.

        Raises UsageRejected when the database refuses the content (e.g. a number out of range):
        all-or-nothing, so the caller may split the batch to find the culprit. Other errors
        (database unreachable) propagate as they are: those are worth retrying.
        """
        if not records:
            return
        try:
            async with self._deadline(f"while writing {len(records)} usage record(s)"), self._engine.begin() as conn:
                await usage_ops.insert_many(conn, records)
        except SQLAlchemyError as exc:
            if _is_content_error(exc):
                raise UsageRejected(f"{len(records)} usage record(s) refused: {_reason(exc)}") from exc
            raise
        except (OverflowError, TypeError, ValueError) as exc:  # a driver that could not bind a value
            raise UsageRejected(f"{len(records)} usage record(s) refused: {type(exc).__name__}: {exc}") from exc

    async def usage_summary(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        group_by: tuple[str, ...] = ("token_name", "model"),
    ) -> list[dict[str, Any]]:
        """Per group: requests, errors (outcome not "ok"), prompt_tokens, completion_tokens; since <= ts < until."""
        async with self._deadline("while summing usage", REPORT_TIMEOUT_S), self._engine.connect() as conn:
            return await usage_ops.summary(conn, since, until, group_by)


_ASYNCPG_CONTENT_ERRORS = (asyncpg.exceptions.DataError, asyncpg.exceptions.IntegrityConstraintViolationError)


def _is_content_error(exc: SQLAlchemyError) -> bool:
    """True when the records themselves are at fault, not the connection or the schema."""
    if isinstance(exc, (DataError, IntegrityError)):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return True  # a value our own column types could not convert
    # asyncpg checks argument types client-side; SQLAlchemy reports those as plain DBAPIError.
    cause: BaseException | None = getattr(exc, "orig", None)
    while cause is not None:
        if isinstance(cause, _ASYNCPG_CONTENT_ERRORS):
            return True
        cause = cause.__cause__
    return False


def _reason(exc: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's SQL echo and parameter dump."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
