"""Token and usage store: hashed bearer tokens and per-request usage in SQLite, PostgreSQL or MySQL/MariaDB."""

from flotilla.store.errors import (
    DatabaseURLError,
    InvalidToken,
    StoreError,
    StoreUnavailable,
    TokenConflict,
    TokenExists,
    TokenNotFound,
    UsageRejected,
)
from flotilla.store.hashing import generate_secret, hash_token, token_hasher
from flotilla.store.records import TokenRecord, UsageRecord

# These pull in SQLAlchemy and Alembic (~0.4 s): loaded on first use, so commands that never
# touch the database (sim, validate, bench) start fast.
_LAZY = {"Store": "flotilla.store.store", "normalise_database_url": "flotilla.store.urls", "safe_url": "flotilla.store.urls"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flotilla.store' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

__all__ = [
    "DatabaseURLError",
    "InvalidToken",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TokenConflict",
    "TokenExists",
    "TokenNotFound",
    "TokenRecord",
    "UsageRecord",
    "UsageRejected",
    "generate_secret",
    "hash_token",
    "token_hasher",
    "normalise_database_url",
    "safe_url",
]
