"""Errors the store raises; each message names the token or setting at fault."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the token and usage store raises on purpose."""


class DatabaseURLError(StoreError, ValueError):
    """A database URL flotilla cannot use (unknown scheme, missing parts)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or answered with an error (readiness fails)."""


class InvalidToken(StoreError, ValueError):
    """A token name, priority, threshold or secret out of bounds."""


class TokenExists(StoreError, ValueError):
    """A token with this name is already stored."""


class TokenConflict(StoreError, ValueError):
    """The secret is already used by another token (secrets identify tokens, so they must differ)."""


class TokenNotFound(StoreError, KeyError):
    """No token with this name is stored."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:  # KeyError would print the repr of its argument only
        return f"no token named {self.name!r} (see `flotilla tokens list`)"


class UsageRejected(StoreError):
    """The database refused usage records for their content; writing them again cannot succeed."""
