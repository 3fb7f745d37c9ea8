"""The Node.js tools in scripts/portal (json-schema-to-typescript, Backstage's catalog model), run
with the machine's Node: `npm ci` there first when node_modules does not match the lock file."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PORTAL_TOOLS = REPO / "scripts" / "portal"


class NodeToolError(RuntimeError):
    """Node, npm or a tool failed; the message says which and why."""


def _locked(lock: Path) -> dict:
    return {k: v.get("version") for k, v in json.loads(lock.read_text()).get("packages", {}).items() if k}


def ensure_installed(directory: Path = PORTAL_TOOLS) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise NodeToolError("Node.js 20+ and npm are needed on PATH (Debian: apt-get install nodejs npm)")
    marker = directory / "node_modules" / ".package-lock.json"
    if marker.is_file() and _locked(marker) == _locked(directory / "package-lock.json"):
        return
    done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=directory, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        raise NodeToolError(f"npm ci in {directory} failed:\n{done.stderr[-2000:]}")


def run_tool(script: str, stdin: str, *args: str) -> str:
    """Run scripts/portal/SCRIPT with `stdin`; returns its stdout."""
    ensure_installed()
    done = subprocess.run(["node", str(PORTAL_TOOLS / script), *args], input=stdin, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        raise NodeToolError(f"node {script} failed:\n{done.stderr[-2000:]}")
    return done.stdout
