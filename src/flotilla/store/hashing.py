"""Token secrets: how they are hashed for storage and lookup, and how new ones are made."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable

PEPPER_ENV = "FLOTILLA_TOKEN_PEPPER"
SECRET_PREFIX = "flt-"


def _builtin_sha256():
    """CPython's own SHA-256 (HACL*), when built in: for a 40-byte secret it is faster than
    OpenSSL's, which allocates and looks up a digest context on every call. Same digest."""
    for name in ("_sha2", "_sha256"):  # Python 3.12+, 3.11
        try:
            return getattr(__import__(name), "sha256")
        except (ImportError, AttributeError):
            continue
    return None


_sha256 = _builtin_sha256() or hashlib.sha256


def hash_token(secret: str) -> str:
    """SHA-256 hex of the secret, or HMAC-SHA256 keyed with $FLOTILLA_TOKEN_PEPPER when set.

    Bearer tokens are long random strings, so a fast hash is enough (no password stretching);
    the pepper keeps a stolen database from being checked against guessed tokens offline.
    The pepper is read on every call so that every process agrees with its own environment.
    """
    data = secret.encode()
    pepper = os.environ.get(PEPPER_ENV)
    if pepper:
        return hmac.digest(pepper.encode(), data, "sha256").hex()
    return _sha256(data).hexdigest()


def token_hasher() -> Callable[[str], str]:
    """hash_token with the pepper read now, once: for a long-running process's hot path (the
    gateway hashes every request's secret; reading the environment each time cost more than SHA-256)."""
    pepper = os.environ.get(PEPPER_ENV)
    if pepper:
        key = pepper.encode()
        return lambda secret: hmac.digest(key, secret.encode(), "sha256").hex()
    sha256 = _sha256
    return lambda secret: sha256(secret.encode()).hexdigest()


def generate_secret() -> str:
    """A fresh bearer secret: 'flt-' and 256 random bits, URL-safe."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_preview(token_hash: str) -> str:
    """Enough of a hash to tell tokens apart in a listing, never the whole value."""
    return token_hash[:8] + "…"
