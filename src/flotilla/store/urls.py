"""Database URLs as users write them, mapped to SQLAlchemy's async drivers."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from flotilla.store.errors import DatabaseURLError

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
    "mariadb": "mariadb+aiomysql",
}
_SUPPORTED = "sqlite:///path.db, sqlite:///:memory:, postgresql://..., mysql://... or mariadb://..."


def normalise_database_url(url: str) -> URL:
    """Parse `url` and pick the async driver for its database, whatever driver it named.

    `postgresql+psycopg2://` and friends are accepted too: only the database kind matters here.
    """
    text = url.strip()
    if not text:
        raise DatabaseURLError(f"the database URL is empty; use {_SUPPORTED}")
    try:
        parsed = make_url(text)
    except ArgumentError:
        scheme = text.split(":", 1)[0] if ":" in text else text[:20]
        raise DatabaseURLError(f"database URL {scheme!r}... is not a URL; use {_SUPPORTED}") from None
    backend = parsed.get_backend_name()
    driver = _ASYNC_DRIVERS.get(backend)
    if driver is None:
        raise DatabaseURLError(f"database kind {backend!r} is not supported; use {_SUPPORTED}")
    parsed = parsed.set(drivername=driver)
    if backend == "sqlite":
        return parsed
    if not parsed.host:
        raise DatabaseURLError(f"database URL {safe_url(parsed)} names no host")
    if not parsed.database:
        raise DatabaseURLError(f"database URL {safe_url(parsed)} names no database (…/DBNAME)")
    if driver.endswith("aiomysql") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL (None for in-memory databases)."""
    if url.get_backend_name() != "sqlite" or is_sqlite_memory(url):
        return None
    return Path(url.database or "")


def safe_url(url: URL | str) -> str:
    """The URL with its password masked, for messages and logs."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return "<unparseable URL>"
    return url.render_as_string(hide_password=True)
