"""Token reads and writes on an open connection; Store wraps each in a transaction.

Change tracking: every write first bumps the single row of `flotilla_token_revision` and stamps
the rows it touches with the new value. That UPDATE holds the row lock until commit, so token
writers commit one after another in revision order: once a reader sees revision N committed,
every revision below N is committed too. A reader asking for `revision > watermark` therefore
never misses a concurrent change, with no clock involved (DB clocks and overlap windows can
skip a change committed late with an early timestamp). `revision` is indexed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from flotilla.spec.gateway import TokenSpec
from flotilla.store.errors import InvalidToken, TokenConflict, TokenExists, TokenNotFound
from flotilla.store.hashing import hash_token
from flotilla.store.records import TokenRecord
from flotilla.store.schema import token_revision, tokens

_PLACEHOLDER_SECRET = "x" * 8


def validate_token_fields(
    name: str, priority: int | None = None, threshold: int | None = None, secret: str | None = None
) -> None:
    """Apply the spec's rules for tokens (name shape, priority 0-1000, threshold >= 0, secret >= 8 chars)."""
    try:
        TokenSpec(
            name=name,
            token=_PLACEHOLDER_SECRET if secret is None else secret,
            priority=1 if priority is None else priority,
            threshold=10 if threshold is None else threshold,
        )
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "token"
            message = error["msg"].removeprefix("Value error, ")
            if field in ("priority", "threshold"):
                message += f" (got {error.get('input')!r})"
            problems.append(f"{'secret' if field == 'token' else field}: {message}")
        raise InvalidToken(f"token {name!r}: " + "; ".join(problems)) from None


def _record(row: Any) -> TokenRecord:
    return TokenRecord(
        name=row.name,
        token_hash=row.token_hash,
        priority=row.priority,
        threshold=row.threshold,
        revoked=bool(row.revoked),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def take_revision(conn: AsyncConnection) -> int:
    """Bump the change counter (locking it until commit) and return the new value."""
    await conn.execute(
        sa.update(token_revision).where(token_revision.c.id == 1).values(value=token_revision.c.value + 1)
    )
    return (await conn.execute(sa.select(token_revision.c.value).where(token_revision.c.id == 1))).scalar_one()


async def _owner_of_hash(conn: AsyncConnection, token_hash: str) -> str | None:
    return (await conn.execute(sa.select(tokens.c.name).where(tokens.c.token_hash == token_hash))).scalar()


async def bootstrap(conn: AsyncConnection, specs: Sequence[TokenSpec]) -> None:
    """Insert spec tokens that are missing; update secret, priority and threshold of those that differ.

    Revocation is never undone here: a token revoked with `flotilla tokens revoke` stays revoked
    while it is still in the spec (`flotilla tokens restore` re-enables it). Tokens absent from
    the spec are left alone: the store cannot tell them from tokens added with the CLI.
    """
    if not specs:
        return
    revision = await take_revision(conn)
    wanted = {spec.name: (hash_token(spec.token), spec.priority, spec.threshold) for spec in specs}
    stored = {
        row.name: row
        for row in await conn.execute(
            sa.select(tokens.c.name, tokens.c.token_hash, tokens.c.priority, tokens.c.threshold).where(
                tokens.c.name.in_(list(wanted))
            )
        )
    }
    owners = {
        row.token_hash: row.name
        for row in await conn.execute(
            sa.select(tokens.c.name, tokens.c.token_hash).where(
                tokens.c.token_hash.in_([h for h, _, _ in wanted.values()])
            )
        )
    }
    inserts = []
    for name, (token_hash, priority, threshold) in wanted.items():
        owner = owners.get(token_hash)
        if owner is not None and owner != name:
            raise TokenConflict(
                f"the secret of spec token {name!r} is already stored for token {owner!r}; "
                "every token needs its own secret"
            )
        row = stored.get(name)
        if row is None:
            inserts.append(
                {
                    "name": name,
                    "token_hash": token_hash,
                    "priority": priority,
                    "threshold": threshold,
                    "revoked": False,
                    "revision": revision,
                }
            )
        elif (row.token_hash, row.priority, row.threshold) != (token_hash, priority, threshold):
            await conn.execute(
                sa.update(tokens)
                .where(tokens.c.name == name)
                .values(
                    token_hash=token_hash,
                    priority=priority,
                    threshold=threshold,
                    revision=revision,
                    updated_at=sa.func.now(),
                )
            )
    if inserts:
        await conn.execute(sa.insert(tokens), inserts)


async def add(conn: AsyncConnection, name: str, priority: int, threshold: int, secret: str) -> None:
    revision = await take_revision(conn)
    if (await conn.execute(sa.select(tokens.c.id).where(tokens.c.name == name))).first() is not None:
        raise TokenExists(f"a token named {name!r} already exists; change it with `flotilla tokens set {name}`")
    token_hash = hash_token(secret)
    owner = await _owner_of_hash(conn, token_hash)
    if owner is not None:
        raise TokenConflict(
            f"that secret is already used by token {owner!r}; choose another (or let flotilla generate one)"
        )
    await conn.execute(
        sa.insert(tokens).values(
            name=name, token_hash=token_hash, priority=priority, threshold=threshold, revoked=False, revision=revision
        )
    )


async def update(
    conn: AsyncConnection,
    name: str,
    *,
    priority: int | None = None,
    threshold: int | None = None,
    secret: str | None = None,
    revoked: bool | None = None,
) -> None:
    revision = await take_revision(conn)
    values: dict[str, Any] = {"revision": revision, "updated_at": sa.func.now()}
    if priority is not None:
        values["priority"] = priority
    if threshold is not None:
        values["threshold"] = threshold
    if revoked is not None:
        values["revoked"] = revoked
    if secret is not None:
        token_hash = hash_token(secret)
        owner = await _owner_of_hash(conn, token_hash)
        if owner is not None and owner != name:
            raise TokenConflict(f"that secret is already used by token {owner!r}; choose another")
        values["token_hash"] = token_hash
    result = await conn.execute(sa.update(tokens).where(tokens.c.name == name).values(**values))
    if result.rowcount == 0:
        raise TokenNotFound(name)


async def list_all(conn: AsyncConnection) -> list[TokenRecord]:
    return [_record(row) for row in await conn.execute(sa.select(tokens).order_by(tokens.c.name))]


async def changed_since(conn: AsyncConnection, watermark: object | None) -> tuple[list[TokenRecord], int]:
    if watermark is None:
        query = sa.select(tokens).order_by(tokens.c.revision)
        floor = 0
    elif isinstance(watermark, int) and not isinstance(watermark, bool) and watermark >= 0:
        query = sa.select(tokens).where(tokens.c.revision > watermark).order_by(tokens.c.revision)
        floor = watermark
    else:
        raise TypeError(f"watermark must be None or a value returned by tokens_changed_since, got {watermark!r}")
    rows = list(await conn.execute(query))
    return [_record(row) for row in rows], max([floor, *(row.revision for row in rows)])
