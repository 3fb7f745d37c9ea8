"""Node.js packages the tests drive (the openai npm client, json-schema-to-typescript, Backstage's
catalog model): each directory has a package.json and a package-lock.json, installed with `npm ci`
when node_modules does not match the lock file. Without Node the tests skip, except in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        reason = "needs Node.js 20+ and npm on PATH"
        if os.environ.get("CI", "") not in ("", "0", "false"):
            pytest.fail(reason + " (CI)", pytrace=False)
        pytest.skip(reason)
    return node


def installed(directory: Path) -> Path:
    """`npm ci` in `directory` unless node_modules already matches its lock file; returns directory."""
    node_or_skip()
    lock = directory / "package-lock.json"
    marker = directory / "node_modules" / ".package-lock.json"
    if not marker.is_file() or _packages(marker) != _packages(lock):
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=directory, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"npm ci in {directory} failed:\n{done.stdout}\n{done.stderr}"
    return directory


def _packages(lock: Path) -> dict:
    import json

    packages = json.loads(lock.read_text()).get("packages", {})
    return {k: v.get("version") for k, v in packages.items() if k}
