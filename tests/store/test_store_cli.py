"""`flotilla tokens ...` and `flotilla usage` through typer's CliRunner, on SQLite."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from flotilla.store import Store, UsageRecord, hash_token
from flotilla.store.commands import register


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.db"


runner = CliRunner()


def run(app: typer.Typer, *args: str, input: str | None = None, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), input=input, env=env)


def tokens_in(db: str):
    async def read():
        store = await Store.open(db)
        try:
            return {r.name: r for r in await store.list_tokens()}
        finally:
            await store.close()

    return asyncio.run(read())


def test_add_prints_a_generated_secret_once(app: typer.Typer, db: str) -> None:
    result = run(app, "tokens", "add", "alice", "--priority", "5", "--threshold", "3", "--database", db)
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("flt-") and "\n" not in secret
    assert "cannot be shown again" in result.stderr
    alice = tokens_in(db)["alice"]
    assert (alice.token_hash, alice.priority, alice.threshold) == (hash_token(secret), 5, 3)


def test_add_with_a_given_secret_does_not_echo_it(app: typer.Typer, db: str) -> None:
    result = run(app, "tokens", "add", "bob", "--token", "bob-secret-123", "--database", db)
    assert result.exit_code == 0, result.output
    assert "bob-secret-123" not in result.output
    assert tokens_in(db)["bob"].token_hash == hash_token("bob-secret-123")


def test_secret_from_stdin(app: typer.Typer, db: str) -> None:
    result = run(app, "tokens", "add", "carol", "--token", "-", "--database", db, input="carol-secret-9\n")
    assert result.exit_code == 0, result.output
    assert tokens_in(db)["carol"].token_hash == hash_token("carol-secret-9")


def test_list_shows_tokens_but_no_secret_or_full_hash(app: typer.Typer, db: str) -> None:
    secret = run(app, "tokens", "add", "alice", "--priority", "7", "--database", db).stdout.strip()
    run(app, "tokens", "add", "bob", "--database", db)
    run(app, "tokens", "revoke", "bob", "--database", db)
    result = run(app, "tokens", "list", "--database", db)
    assert result.exit_code == 0, result.output
    full_hash = hash_token(secret)
    assert secret not in result.output and full_hash not in result.output
    assert full_hash[:8] in result.output
    lines = result.stdout.splitlines()
    alice = next(line for line in lines if "alice" in line)
    bob = next(line for line in lines if "bob" in line)
    assert "7" in alice and "active" in alice
    assert "revoked" in bob


def test_revoke_restore_and_set(app: typer.Typer, db: str) -> None:
    run(app, "tokens", "add", "alice", "--database", db)
    assert run(app, "tokens", "revoke", "alice", "--database", db).exit_code == 0
    assert tokens_in(db)["alice"].revoked
    assert run(app, "tokens", "restore", "alice", "--database", db).exit_code == 0
    assert not tokens_in(db)["alice"].revoked
    result = run(
        app,
        "tokens",
        "set",
        "alice",
        "--priority",
        "9",
        "--threshold",
        "0",
        "--token",
        "alice-rotated",
        "--database",
        db,
    )
    assert result.exit_code == 0, result.output
    assert "priority 9, threshold 0, a new secret" in result.stderr
    alice = tokens_in(db)["alice"]
    assert (alice.priority, alice.threshold, alice.token_hash) == (9, 0, hash_token("alice-rotated"))


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("tokens", "revoke", "ghost"), "no token named 'ghost'"),
        (("tokens", "set", "ghost", "--priority", "2"), "no token named 'ghost'"),
        (("tokens", "set", "alice"), "nothing to change"),
        (("tokens", "add", "alice"), "'alice' already exists"),
        (("tokens", "add", "bad name"), "must be 1-64 of letters"),
        (("tokens", "set", "alice", "--priority", "5000"), "priority"),
    ],
)
def test_bad_input_gets_a_clear_error(app: typer.Typer, db: str, args: tuple[str, ...], complaint: str) -> None:
    run(app, "tokens", "add", "alice", "--database", db)
    result = run(app, *args, "--database", db)
    assert result.exit_code == 1
    assert complaint in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


def test_no_database_anywhere_is_a_clear_error(app: typer.Typer) -> None:
    result = run(app, "tokens", "list", env={"FLOTILLA_DATABASE_URL": ""})
    assert result.exit_code == 1
    assert "no database given" in result.stderr


def test_database_from_spec_then_environment(app: typer.Typer, tmp_path: Path) -> None:
    spec = tmp_path / "flotilla.yaml"
    spec.write_text(f"models: [{{name: chat, engine: sim}}]\ngateway:\n  database: sqlite:///{tmp_path}/spec.db\n")
    assert run(app, "tokens", "add", "from-spec", "--spec", str(spec)).exit_code == 0
    assert "from-spec" in tokens_in(f"sqlite:///{tmp_path}/spec.db")
    env_db = f"sqlite:///{tmp_path}/env.db"
    assert run(app, "tokens", "add", "from-env", env={"FLOTILLA_DATABASE_URL": env_db}).exit_code == 0
    assert "from-env" in tokens_in(env_db)


def write_usage(db: str, records: list[UsageRecord]) -> None:
    async def write():
        store = await Store.open(db)
        try:
            await store.write_usage(records)
        finally:
            await store.close()

    asyncio.run(write())


def usage_record(token: str, model: str, ts: datetime, outcome: str = "ok") -> UsageRecord:
    return UsageRecord(uuid.uuid4().hex, token, model, "m-0", 200, outcome, True, 10, 5, 1.0, 2.0, 3.0, ts=ts)


def test_usage_report(app: typer.Typer, db: str) -> None:
    now = datetime.now(UTC)
    write_usage(
        db,
        [
            usage_record("alice", "chat", now - timedelta(minutes=5)),
            usage_record("alice", "chat", now - timedelta(minutes=5), outcome="upstream_error"),
            usage_record("bob", "chat", now - timedelta(minutes=5)),
            usage_record("bob", "embed", now - timedelta(days=3)),
        ],
    )
    result = run(app, "usage", "--json", "--database", db)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {
            "token_name": "alice",
            "model": "chat",
            "requests": 2,
            "errors": 1,
            "prompt_tokens": 20,
            "completion_tokens": 10,
        },
        {"token_name": "bob", "model": "chat", "requests": 1, "errors": 0, "prompt_tokens": 10, "completion_tokens": 5},
        {
            "token_name": "bob",
            "model": "embed",
            "requests": 1,
            "errors": 0,
            "prompt_tokens": 10,
            "completion_tokens": 5,
        },
    ]
    recent = json.loads(run(app, "usage", "--json", "--since", "1h", "--by", "token", "--database", db).stdout)
    assert recent == [
        {"token_name": "alice", "requests": 2, "errors": 1, "prompt_tokens": 20, "completion_tokens": 10},
        {"token_name": "bob", "requests": 1, "errors": 0, "prompt_tokens": 10, "completion_tokens": 5},
    ]
    table = run(app, "usage", "--by", "model", "--database", db)
    assert table.exit_code == 0
    chat = next(line for line in table.stdout.splitlines() if "chat" in line)
    assert [cell.strip() for cell in chat.split("│")[1:6]] == ["chat", "3", "1", "30", "15"]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("--since", "yesterday"), "neither an age"),
        (("--by", "colour"), "comma-separated list of token, model"),
    ],
)
def test_usage_bad_options(app: typer.Typer, db: str, args: tuple[str, ...], complaint: str) -> None:
    result = run(app, "usage", *args, "--database", db)
    assert result.exit_code == 2
    assert complaint in " ".join(result.output.replace("│", " ").split())
