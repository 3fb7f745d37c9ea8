"""Node.js packages the tests drive (the openai npm client, json-schema-to-typescript, Backstage's
catalog model): each directory has a package.json and a package-lock.json, installed with `npm ci`
when node_modules does not match the lock file. Without Node the tests skip, except in CI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from shared import shared_required

from flotilla.catalog.node import NodeToolError, ensure_installed


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        reason = "needs Node.js 20+ and npm on PATH"
        if shared_required():  # CI (.ci/run): everything must run
            pytest.fail(reason + " (FLOTILLA_REQUIRE_SHARED is set)", pytrace=False)
        pytest.skip(reason)
    return node


def installed(directory: Path) -> Path:
    """`npm ci` in `directory` unless node_modules already matches its lock file; returns directory."""
    node_or_skip()
    try:
        ensure_installed(directory)
    except NodeToolError as exc:
        pytest.fail(str(exc), pytrace=False)
    return directory
