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
from flotilla.store.hashing import generate_secret, hash_token
from flotilla.store.records import TokenRecord, UsageRecord
from flotilla.store.store import Store
from flotilla.store.urls import normalise_database_url, safe_url

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
    "normalise_database_url",
    "safe_url",
]
