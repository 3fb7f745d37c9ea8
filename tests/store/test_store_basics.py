"""URLs, hashing, time parsing and database-URL resolution (no database needed)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flotilla.store import DatabaseURLError, Store, generate_secret, hash_token, normalise_database_url, safe_url
from flotilla.store.timeparse import parse_point_in_time
from flotilla.store.url_source import resolve_database_url


@pytest.mark.parametrize(
    ("given", "driver", "database"),
    [
        ("sqlite:///./flotilla.db", "sqlite+aiosqlite", "./flotilla.db"),
        ("sqlite:///:memory:", "sqlite+aiosqlite", ":memory:"),
        ("sqlite+aiosqlite:////var/lib/flotilla.db", "sqlite+aiosqlite", "/var/lib/flotilla.db"),
        ("postgresql://u:p@db:5432/flotilla", "postgresql+asyncpg", "flotilla"),
        ("postgres://u@db/flotilla", "postgresql+asyncpg", "flotilla"),
        ("postgresql+asyncpg://u@db/flotilla", "postgresql+asyncpg", "flotilla"),
        ("postgresql+psycopg2://u@db/flotilla", "postgresql+asyncpg", "flotilla"),
        ("mysql://root@db/flotilla", "mysql+aiomysql", "flotilla"),
        ("mysql+pymysql://root@db/flotilla", "mysql+aiomysql", "flotilla"),
        ("mysql+aiomysql://root@db/flotilla", "mysql+aiomysql", "flotilla"),
        ("mariadb://root@db/flotilla", "mariadb+aiomysql", "flotilla"),
    ],
)
def test_urls_map_to_async_drivers(given: str, driver: str, database: str) -> None:
    url = normalise_database_url(given)
    assert url.drivername == driver
    assert url.database == database


def test_mysql_urls_default_to_utf8mb4() -> None:
    assert normalise_database_url("mysql://root@db/f").query["charset"] == "utf8mb4"
    assert normalise_database_url("mysql://root@db/f?charset=latin1").query["charset"] == "latin1"


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ("oracle://scott@db/orcl", "'oracle' is not supported"),
        ("", "empty"),
        ("not a url", "is not a URL"),
        ("postgresql://u@db", "names no database"),
        ("mysql:///flotilla", "names no host"),
    ],
)
def test_bad_urls_are_named(given: str, complaint: str) -> None:
    with pytest.raises(DatabaseURLError, match=complaint):
        normalise_database_url(given)


def test_safe_url_masks_the_password() -> None:
    shown = safe_url(normalise_database_url("postgresql://flotilla:hunter22@db/f"))
    assert "hunter22" not in shown and "flotilla:***@db" in shown


def test_hash_is_sha256_hex_without_pepper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOTILLA_TOKEN_PEPPER", raising=False)
    assert hash_token("s3cret-token") == hashlib.sha256(b"s3cret-token").hexdigest()


def test_pepper_makes_it_an_hmac(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOTILLA_TOKEN_PEPPER", "pepper!")
    expected = hmac.new(b"pepper!", b"s3cret-token", hashlib.sha256).hexdigest()
    assert hash_token("s3cret-token") == expected
    assert expected != hashlib.sha256(b"s3cret-token").hexdigest()


def test_generated_secrets_are_prefixed_and_distinct() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(s.startswith("flt-") and len(s) >= 40 for s in secrets)


def test_point_in_time_accepts_ages_and_iso() -> None:
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_point_in_time("1h", now) == now - timedelta(hours=1)
    assert parse_point_in_time("7d", now) == now - timedelta(days=7)
    assert parse_point_in_time("30m", now) == now - timedelta(minutes=30)
    assert parse_point_in_time("2025-02-01") == datetime(2025, 2, 1, tzinfo=UTC)
    assert parse_point_in_time("2025-02-01T10:00:00+02:00") == datetime(2025, 2, 1, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither an age"):
        parse_point_in_time("yesterday")


def test_database_url_precedence(tmp_path: Path) -> None:
    spec = tmp_path / "flotilla.yaml"
    spec.write_text("models: []\ngateway:\n  database: ${DB_URL}\n  tokens:\n    - {name: a, token: '${UNSET}'}\n")
    env = {"DB_URL": "postgresql://u@db/spec", "FLOTILLA_DATABASE_URL": "sqlite:///env.db"}
    assert resolve_database_url("sqlite:///flag.db", spec, env) == "sqlite:///flag.db"
    # Only gateway.database is read: the unset token secret does not matter here.
    assert resolve_database_url(None, spec, env) == "postgresql://u@db/spec"
    assert resolve_database_url(None, None, env) == "sqlite:///env.db"
    with pytest.raises(DatabaseURLError, match="no database given"):
        resolve_database_url(None, None, {})


def test_spec_without_database_uses_the_default(tmp_path: Path) -> None:
    spec = tmp_path / "flotilla.yaml"
    spec.write_text("models: [{name: chat, engine: sim}]\n")
    assert resolve_database_url(None, spec, {}) == "sqlite:///./flotilla.db"


def test_spec_problems_are_named(tmp_path: Path) -> None:
    spec = tmp_path / "flotilla.yaml"
    with pytest.raises(DatabaseURLError, match="cannot read"):
        resolve_database_url(None, spec, {})
    spec.write_text("gateway:\n  database: ${NOPE}\n")
    with pytest.raises(DatabaseURLError, match="NOPE is not set"):
        resolve_database_url(None, spec, {})
    spec.write_text("gateway: [1, 2]\n")
    with pytest.raises(DatabaseURLError, match="must be a mapping"):
        resolve_database_url(None, spec, {})


async def test_sql_parameters_never_reach_the_logs(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """Logged statements and database errors carry no parameters (token hashes)."""
    import logging

    import sqlalchemy as sa
    from sqlalchemy.exc import IntegrityError

    from flotilla.store.schema import tokens

    secret = "a-secret-of-our-own-123"
    with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
        await store.add_token("logcheck", 1, 1, secret)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "INSERT INTO flotilla_tokens" in text, "statements are still logged when asked for"
    assert hash_token(secret) not in text and secret not in text
    row = {"name": "logcheck", "token_hash": hash_token(secret), "priority": 1, "threshold": 1, "revoked": False,
           "revision": 1}
    with pytest.raises(IntegrityError) as caught:
        async with store.engine.begin() as conn:
            await conn.execute(sa.insert(tokens), row)
    assert hash_token(secret) not in str(caught.value)


def test_debug_logging_never_logs_database_rows() -> None:
    """SQLAlchemy logs statements at INFO and result rows (token hashes) at DEBUG: never at the gateway's debug level."""
    import logging

    from flotilla.logs import configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("debug")
        assert not logging.getLogger("sqlalchemy.engine.Engine").isEnabledFor(logging.INFO)
        assert logging.getLogger("flotilla.gateway").isEnabledFor(logging.DEBUG)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
