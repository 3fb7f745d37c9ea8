"""Starting real Flotilla processes (sim engines, gateways) for tests, and waiting for them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 60.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text() if log and log.exists() else ""
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered:\n{text[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    text = log.read_text() if log and log.exists() else ""
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s:\n{text[-4000:]}")


@contextlib.contextmanager
def running(argv: list[str], health_url: str, log: Path, env: dict | None = None) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
    try:
        wait_http(health_url, proc, log=log)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def flotilla(*args: str) -> list[str]:
    return [sys.executable, "-m", "flotilla.cli", *args]


@contextlib.contextmanager
def sim_engine(tmp: Path, model: str = "chat", **options) -> Iterator[str]:
    """A real sim engine on a free port; yields its base URL."""
    with sim_process(tmp, model, **options) as (url, _proc):
        yield url


@contextlib.contextmanager
def sim_process(tmp: Path, model: str = "chat", **options) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real sim engine on a free port; yields its base URL and process (to kill it in a test)."""
    port = free_port()
    argv = flotilla("sim", "--port", str(port), "--model", model)
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not False:
            argv += [flag, str(value)]
    with running(argv, f"http://127.0.0.1:{port}/health", tmp / f"sim-{port}.log") as proc:
        yield f"http://127.0.0.1:{port}", proc


@dataclass
class GatewayProcess:
    url: str
    proc: subprocess.Popen
    log: Path
    spec_path: Path


@contextlib.contextmanager
def gateway_process(
    tmp: Path, spec: dict, endpoints: dict[str, list[str]], env: dict | None = None, launcher: list[str] | None = None
) -> Iterator[GatewayProcess]:
    """A real gateway process for `spec` on a free port, ready; stopped at the end if still running.
    `launcher` is put before the command (e.g. to run it in its own mount namespace)."""
    port = free_port()
    spec = {**spec, "gateway": {**spec.get("gateway", {}), "port": port}}
    spec["gateway"].setdefault("database", f"sqlite:///{tmp}/flotilla-{port}.db")
    path = tmp / f"spec-{port}.yaml"
    path.write_text(yaml.safe_dump(spec))
    argv = flotilla("gateway", str(path))
    for model, urls in endpoints.items():
        for url in urls:
            argv += ["--endpoint", f"{model}={url}"]
    argv = [*(launcher or []), *argv]
    log = tmp / f"gateway-{port}.log"
    with running(argv, f"http://127.0.0.1:{port}/health/ready", log, env) as proc:
        yield GatewayProcess(f"http://127.0.0.1:{port}", proc, log, path)


@contextlib.contextmanager
def gateway(
    tmp: Path, spec: dict, endpoints: dict[str, list[str]], env: dict | None = None, launcher: list[str] | None = None
) -> Iterator[str]:
    """A real gateway process for `spec` on a free port; yields its base URL."""
    with gateway_process(tmp, spec, endpoints, env, launcher) as process:
        yield process.url


def usage_rows(db, group_by=("token_name", "model"), at_least=1, timeout=10.0) -> list[dict]:
    """Usage summary rows from a gateway's SQLite store, once `at_least` requests are written."""
    from flotilla.store import Store

    async def summary():
        store = await Store.open(f"sqlite:///{db}", migrate=False)
        try:
            return await store.usage_summary(group_by=group_by)
        finally:
            await store.close()

    deadline = time.monotonic() + timeout
    while True:
        rows = asyncio.run(summary())
        if sum(r["requests"] for r in rows) >= at_least or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)
