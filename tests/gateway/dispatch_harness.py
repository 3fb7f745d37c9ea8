"""Gateways as the dispatcher contract tests see them: N dispatchers, each with its own view of the
model's replicas (as separate gateway processes have), sharing one model's queue.

`kind="local"` is one in-process dispatcher; `kind="rabbitmq"` is N RabbitMQ dispatchers on the
machine's broker under a random prefix (the first one started hosts the scheduler, so a single
gateway's requests take the in-process path); `kind="rabbitmq-remote"` adds a scheduler-hosting
gateway in front, so the test's requests all cross the broker; `kind="rabbitmq-quorum-remote"` is
the same on quorum queues. Tests wait for conditions (`until`), never for fixed times.
"""

from __future__ import annotations

import asyncio
import time

from rabbitmq import delete_installation, random_prefix, require_shared_broker

from flotilla.gateway.dispatch import LocalDispatcher, Ticket
from flotilla.gateway.dispatch.rabbitmq import RabbitMqDispatcher
from flotilla.gateway.dispatch.rabbitmq.scheduler import State
from flotilla.gateway.replicas import ReplicaPool

MODEL = "m"


def ticket(token: str = "t", priority: int = 1, threshold: int = 100, rid: str | None = None) -> Ticket:
    return Ticket(rid or f"{token}-{priority}", MODEL, token, priority, threshold)


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


class Cluster:
    def __init__(
        self,
        kind: str,
        *,
        gateways: int = 1,
        replicas: int = 1,
        capacity: int = 1,
        healthy: bool = True,
        policy: str = "least-loaded",
        url: str | None = None,
        rules=None,
        **dispatcher_options,
    ) -> None:
        if kind == "local" and gateways != 1:
            raise ValueError("the local dispatcher serves one gateway")
        # "rabbitmq-remote": the test's gateway (`d`) is not the scheduler, so every ticket, grant
        # and release crosses the broker; a first gateway, started first, hosts the scheduler.
        self.remote = kind.endswith("-remote")
        self.queue_type = "quorum" if "quorum" in kind else "classic"
        if self.remote:
            gateways += 1
        if kind.startswith("rabbitmq"):
            kind = "rabbitmq"
        self.kind = kind
        self.url = url
        self.prefix = random_prefix()
        self.pools: list[ReplicaPool] = []
        self.dispatchers: list = []
        for _ in range(gateways):
            pool = ReplicaPool(MODEL, capacity, policy)  # type: ignore[arg-type]
            pool.set_urls([f"http://127.0.0.1:{9000 + i}" for i in range(replicas)])
            for r in pool.replicas:
                pool.mark(r, healthy)
            self.pools.append(pool)
            options = {**dispatcher_options, **({"rules": {MODEL: rules}} if rules is not None else {})}
            self.dispatchers.append(self._dispatcher(pool, options))

    def _dispatcher(self, pool: ReplicaPool, options: dict):
        if self.kind == "local":
            return LocalDispatcher({MODEL: pool}, **options)
        self.url = self.url or require_shared_broker()
        return RabbitMqDispatcher({MODEL: pool}, url=self.url, prefix=self.prefix, queue_type=self.queue_type, **options)

    async def __aenter__(self) -> "Cluster":
        for d in self.dispatchers:
            await d.start()
        if self.kind == "rabbitmq":
            await until(lambda: all(d.status()[0] for d in self.dispatchers), what="every gateway connected")
        return self

    async def __aexit__(self, *exc) -> None:
        for d in self.dispatchers:
            await d.close()
        if self.kind == "rabbitmq":
            await delete_installation(self.url, self.prefix, [MODEL])

    @property
    def d(self):
        return self.dispatchers[1] if self.remote else self.dispatchers[0]

    # --- the scheduler's view (where slots are counted) ---------------------------------------

    def scheduler(self):
        """The active scheduler's model queue (local: the only one), or None before one is active."""
        if self.kind == "local":
            return self.d._queues[MODEL]
        for d in self.dispatchers:
            s = d.schedulers[MODEL]
            if s.state is State.ACTIVE:
                return s.queue
        return None

    def waiting(self) -> int:
        queue = self.scheduler()
        return len(queue) if queue is not None else 0

    def in_flight(self) -> list[int]:
        queue = self.scheduler()
        pool = queue.pool if queue is not None else self.pools[0]
        return [r.in_flight for r in pool.replicas]

    async def settled(self, waiting: int) -> None:
        """Wait until the scheduler holds `waiting` tickets in line."""
        await until(lambda: self.waiting() == waiting, what=f"{waiting} waiting at the scheduler (have {self.waiting()})")

    # --- replica views (every gateway probes the same replicas) -------------------------------

    def mark(self, index: int, healthy: bool) -> None:
        for pool, d in zip(self.pools, self.dispatchers):
            pool.mark(pool.replicas[index], healthy)
            d.replicas_changed(MODEL)

    def set_external_load(self, index: int, load: int) -> None:
        for pool, d in zip(self.pools, self.dispatchers):
            pool.replicas[index].external_load = load
            d.replicas_changed(MODEL)
