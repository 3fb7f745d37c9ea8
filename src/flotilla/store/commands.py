"""`flotilla tokens add|list|revoke|restore|set` and `flotilla usage`."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from flotilla.store.errors import StoreError
from flotilla.store.hashing import hash_preview
from flotilla.store.timeparse import parse_point_in_time
from flotilla.store.url_source import DATABASE_URL_ENV, resolve_database_url

if TYPE_CHECKING:
    from flotilla.store.store import Store

T = TypeVar("T")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database", help=f"Database URL (else --spec's gateway.database, else ${DATABASE_URL_ENV})."),
]
SpecOption = Annotated[
    Path | None,
    typer.Option("--spec", help="Take the database URL from this flotilla.yaml's gateway.database."),
]
SecretOption = Annotated[
    str | None,
    typer.Option("--token", help="Use this secret (at least 8 characters; '-' reads it from stdin)."),
]

tokens_app = typer.Typer(
    help="Manage the gateway's bearer tokens (stored hashed; secrets are shown once, at creation).",
    no_args_is_help=True,
)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]✗[/red] {message}", highlight=False)
    return typer.Exit(1)


def _run(database: str | None, spec: Path | None, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store (migrating it), run `action`, close; store errors become one clear line."""

    async def main() -> T:
        from flotilla.store.store import Store

        store = await Store.open(resolve_database_url(database, spec))
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (StoreError, ValueError) as exc:
        raise _fail(str(exc)) from None


def _read_secret(token: str | None) -> str | None:
    if token != "-":
        return token
    secret = sys.stdin.readline().strip()
    if not secret:
        raise _fail("--token -: no secret on stdin")
    return secret


@tokens_app.command("add")
def add_token(
    name: Annotated[str, typer.Argument(help="Who the token belongs to; usage is reported by this name.")],
    priority: Annotated[int, typer.Option("--priority", help="Higher is served first (0-1000).")] = 1,
    threshold: Annotated[int, typer.Option("--threshold", help="How many requests may wait in a queue.")] = 10,
    token: SecretOption = None,
    database: DatabaseOption = None,
    spec: SpecOption = None,
) -> None:
    """Add a token. Without --token a secret is generated and printed, once."""
    secret = _read_secret(token)
    stored = _run(database, spec, lambda store: store.add_token(name, priority, threshold, secret))
    if secret is None:
        typer.echo(stored)  # alone on stdout so scripts can capture it
        err.print(
            f"token {name!r} added (priority {priority}, threshold {threshold}); "
            "the secret above is not stored and cannot be shown again"
        )
    else:
        err.print(f"token {name!r} added (priority {priority}, threshold {threshold})")


@tokens_app.command("list")
def list_tokens(database: DatabaseOption = None, spec: SpecOption = None) -> None:
    """List tokens: name, priority, threshold, state, creation time and the start of the hash."""
    records = _run(database, spec, lambda store: store.list_tokens())
    table = Table("name", "priority", "threshold", "state", "created (UTC)", "hash")
    for rec in records:
        table.add_row(
            rec.name,
            str(rec.priority),
            str(rec.threshold),
            "[red]revoked[/red]" if rec.revoked else "active",
            _when(rec.created_at),
            hash_preview(rec.token_hash),
        )
    if records:
        out.print(table)
    else:
        err.print("no tokens yet: `flotilla tokens add NAME` or list them under gateway.tokens in the spec")


@tokens_app.command("revoke")
def revoke_token(name: str, database: DatabaseOption = None, spec: SpecOption = None) -> None:
    """Revoke a token; running gateways refuse it within gateway.authRefreshS. Spec restarts keep it revoked."""
    _run(database, spec, lambda store: store.revoke_token(name))
    err.print(f"token {name!r} revoked")


@tokens_app.command("restore")
def restore_token(name: str, database: DatabaseOption = None, spec: SpecOption = None) -> None:
    """Undo a revocation."""
    _run(database, spec, lambda store: store.restore_token(name))
    err.print(f"token {name!r} restored")


@tokens_app.command("set")
def set_token(
    name: str,
    priority: Annotated[int | None, typer.Option("--priority", help="New priority (0-1000).")] = None,
    threshold: Annotated[int | None, typer.Option("--threshold", help="New threshold.")] = None,
    token: SecretOption = None,
    database: DatabaseOption = None,
    spec: SpecOption = None,
) -> None:
    """Change a token's priority, threshold or secret (a revoked token stays revoked)."""
    secret = _read_secret(token)
    _run(database, spec, lambda store: store.set_token(name, priority=priority, threshold=threshold, secret=secret))
    changed = [
        f"{label} {value}" for label, value in (("priority", priority), ("threshold", threshold)) if value is not None
    ]
    if secret is not None:
        changed.append("a new secret")
    err.print(f"token {name!r} now has {', '.join(changed)}")


_GROUPS = {"token": "token_name", "model": "model", "replica": "replica", "outcome": "outcome", "status": "status_code"}


def _group_by(text: str) -> tuple[str, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in parts if p not in _GROUPS]
    if unknown or not parts:
        raise typer.BadParameter(f"{text!r}: use a comma-separated list of {', '.join(_GROUPS)}", param_hint="--by")
    return tuple(_GROUPS[p] for p in parts)


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_point_in_time(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def usage(
    since: Annotated[str | None, typer.Option("--since", help="Start: ISO time or age (30m, 1h, 7d).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="End (exclusive): ISO time or age.")] = None,
    by: Annotated[str, typer.Option("--by", help="Group by token, model, replica, outcome, status.")] = "token,model",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    database: DatabaseOption = None,
    spec: SpecOption = None,
) -> None:
    """Report requests, errors and prompt/completion tokens per token and model."""
    group_by = _group_by(by)
    start, end = _moment(since, "--since"), _moment(until, "--until")
    rows = _run(database, spec, lambda store: store.usage_summary(since=start, until=end, group_by=group_by))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    labels = {v: k for k, v in _GROUPS.items()}
    table = Table(*(labels[key] for key in group_by), "requests", "errors", "prompt tokens", "completion tokens")
    for row in rows:
        table.add_row(
            *(_cell(row[key]) for key in group_by),
            *(f"{row[k]:,}" for k in ("requests", "errors", "prompt_tokens", "completion_tokens")),
        )
    if rows:
        out.print(table)
    else:
        err.print("no usage recorded in that period")


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens")
    app.command("usage")(usage)
