"""Files of a run: the run folder, its event log, and the SQLite database's folder."""

from __future__ import annotations

import time
from pathlib import Path

RUNS_ROOT = Path(".flotilla")  # gitignored


def default_run_dir(root: Path = RUNS_ROOT) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = root / f"run-{stamp}"
    suffix = 1
    while candidate.exists():  # two runs started in the same second
        suffix += 1
        candidate = root / f"run-{stamp}-{suffix}"
    return candidate


def sqlite_file(database_url: str) -> Path | None:
    """The file of a sqlite URL (sqlite:///rel/path, sqlite:////abs/path, sqlite+aiosqlite:///...)."""
    scheme, sep, rest = database_url.partition(":///")
    if not sep or not scheme.startswith("sqlite"):
        return None
    path = rest.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def ensure_sqlite_folder(database_url: str) -> None:
    """SQLite creates the file but not its folder; the gateway runs in our working directory."""
    path = sqlite_file(database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


class EventLog:
    """Appends timestamped lines to up.log in the run folder."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, message: str) -> str:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        with open(self.path, "a") as log:
            log.write(line + "\n")
        return line
