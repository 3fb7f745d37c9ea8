"""A local file for usage records the database could not take before the gateway stopped.

At stop, records still pending are appended as JSON lines; at the next start they are written to
the store (idempotently: request_id is unique) and the file is removed. The file is locked while
used (flock), so gateways sharing a directory never interleave lines or replay the same file at
once. Records hold token names and counts, never secrets.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import orjson

from flotilla.store import UsageRecord
from flotilla.store.urls import is_sqlite_memory, normalise_database_url, sqlite_file

log = logging.getLogger("flotilla.usage")

DEFAULT_NAME = "flotilla-usage-spool.jsonl"


def spool_path(database_url: str, configured: str | None) -> Path:
    """`configured`, else beside a SQLite database file, else DEFAULT_NAME in the working directory."""
    if configured:
        return Path(configured)
    url = normalise_database_url(database_url)
    if url.get_backend_name() == "sqlite" and not is_sqlite_memory(url):
        db = sqlite_file(url)
        if db is not None:
            return db.with_name(db.name + ".usage-spool.jsonl")
    return Path(DEFAULT_NAME)


class UsageSpool:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self, mode: str) -> Iterator[object]:
        with open(self.path, mode) as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def append(self, records: Sequence[UsageRecord]) -> None:
        """Add records durably (fsync); raises OSError when the file cannot be written."""
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = b"".join(orjson.dumps(asdict(r)) + b"\n" for r in records)
        with self._locked("ab") as handle:
            handle.write(lines)  # type: ignore[attr-defined]
            handle.flush()  # type: ignore[attr-defined]
            os.fsync(handle.fileno())  # type: ignore[attr-defined]

    @contextmanager
    def taken(self) -> Iterator[list[UsageRecord]]:
        """The spooled records, the file locked meanwhile; the file is removed when the block ends
        without an exception (every record written), kept otherwise."""
        if not self.path.exists():
            yield []
            return
        with self._locked("rb") as handle:
            records = list(_parse(handle.read(), self.path))  # type: ignore[attr-defined]
            yield records
            self.path.unlink(missing_ok=True)


def _parse(data: bytes, path: Path) -> Iterator[UsageRecord]:
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            fields = orjson.loads(line)
            fields["ts"] = datetime.fromisoformat(fields["ts"])
            yield UsageRecord(**fields)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            # A torn last line (the process was killed mid-write) must not block the rest.
            log.error("usage spool %s line %d is not a usage record and is skipped: %s", path, number, exc)
