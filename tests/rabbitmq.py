"""RabbitMQ for tests: the machine's broker (shared, isolated by queue prefix) and private nodes.

The shared broker is the one `scripts/services.sh` starts (FLOTILLA_TEST_RABBITMQ_URL overrides
it). Fault tests that stop the broker start a private RabbitMQ node of their own, on free ports,
so that nothing else using the shared one is disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED_URL = os.environ.get("FLOTILLA_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def random_prefix() -> str:
    return "flotilla-test-" + os.urandom(4).hex()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def require_shared_broker() -> str:
    host_port = SHARED_URL.rsplit("@", 1)[-1].split("/", 1)[0]
    port = int(host_port.rsplit(":", 1)[1]) if ":" in host_port else 5672
    if not _port_open(port):
        pytest.fail(f"RabbitMQ is needed at {host_port} (scripts/services.sh starts it); it does not answer")
    return SHARED_URL


async def delete_installation(url: str, prefix: str, models: list[str]) -> None:
    """Remove the durable objects a test's dispatchers declared on the shared broker."""
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for model in models:
            await channel.queue_delete(f"{prefix}.sched.{model}")
        await channel.exchange_delete(f"{prefix}.control")
    finally:
        await connection.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PrivateBroker:
    """A RabbitMQ node of the test's own, which the test may stop and start."""

    url: str
    node: str
    env: dict[str, str]

    def ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env, check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout,
        )

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")

    async def wait_up(self, timeout: float = 30) -> None:
        port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        deadline = time.monotonic() + timeout
        while not _port_open(port):
            if time.monotonic() > deadline:
                raise TimeoutError(f"private RabbitMQ node {self.node} did not listen on {port}")
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def private_broker(tmp: Path) -> Iterator[PrivateBroker]:
    if not (RABBITMQ_BIN / "rabbitmq-server").exists() or shutil.which("erl") is None and not Path("/usr/lib/erlang").exists():
        pytest.fail("RabbitMQ's server is needed for broker fault tests (Debian package rabbitmq-server)")
    amqp_port, dist_port = _free_port(), _free_port()
    name = f"flotilla-test-{os.urandom(3).hex()}"
    node = f"{name}@localhost"
    base = tmp / name
    base.mkdir(parents=True)
    (base / ".erlang.cookie").write_text(os.urandom(16).hex())
    (base / ".erlang.cookie").chmod(0o400)
    (base / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{amqp_port}\nloopback_users = none\n")
    (base / "plugins").write_text("[].\n")
    env = {
        **os.environ,
        "HOME": str(base),
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "plugins"),
        "RABBITMQ_PID_FILE": str(base / "pid"),
    }
    subprocess.run([str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"], env=env, check=True, cwd=base)
    broker = PrivateBroker(f"amqp://guest:guest@127.0.0.1:{amqp_port}/", node, env)
    try:
        deadline = time.monotonic() + 60
        while not _port_open(amqp_port):
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in (base / "log").glob("*.log")) if (base / "log").exists() else ""
                pytest.fail(f"private RabbitMQ node {node} did not start within 60 s:\n{logs}")
            time.sleep(0.2)
        yield broker
    finally:
        with contextlib.suppress(Exception):
            broker.ctl("stop", timeout=30)
