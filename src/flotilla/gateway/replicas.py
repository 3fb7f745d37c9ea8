"""Replicas of a model as the gateway sees them, and the choice of one with a free slot."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from flotilla.gateway.routing import Router


@dataclass(eq=False, slots=True)
class Replica:
    model: str
    url: str  # base URL, no trailing slash
    capacity: int  # maxConcurrency
    in_flight: int = 0  # requests this gateway has on it now
    external_load: int = 0  # requests the engine reports beyond ours (other clients), from its /metrics
    healthy: bool = False
    removed: bool = False  # gone from discovery; finishes what it has, gets nothing new
    last_error: str | None = None
    label: str = field(default="")
    speed_limit: int | None = None  # fewer than capacity while its requests decode too slowly (minTokensPerSecond)
    probe_timeouts: int = 0  # health probes in a row that timed out (a refusal or an error status counts at once)

    def __post_init__(self) -> None:
        if not self.label:
            self.label = urlsplit(self.url).netloc or self.url

    @property
    def free_slots(self) -> int:
        limit = self.capacity if self.speed_limit is None else min(self.capacity, self.speed_limit)
        return limit - self.in_flight - self.external_load

    @property
    def accepts(self) -> bool:
        return self.healthy and not self.removed and self.free_slots > 0

    def accepts_beyond(self, extra: int) -> bool:
        """Room when `extra` slots beyond maxConcurrency may be used (high-priority burst). The speed
        limit still holds: a burst request must not slow everyone below the floor either."""
        if not self.healthy or self.removed:
            return False
        room = self.capacity + extra - self.in_flight - self.external_load
        if self.speed_limit is not None:
            room = min(room, self.speed_limit + extra - self.in_flight - self.external_load)
        return room > 0


class ReplicaPool:
    """The replicas of one model; `pick` returns one with room, or None."""

    def __init__(
        self, model: str, capacity: int, policy: str = "least-loaded", *, scales_to_zero: bool = False
    ) -> None:
        from flotilla.gateway.routing import make_router

        self.model = model
        # An autoscaled model (minReplicas 0) without replicas is scaling up, not down: its requests
        # wait (maxQueueWaitS bounds them) and their queue is what makes KEDA add a replica.
        self.scales_to_zero = scales_to_zero
        self.capacity = capacity
        self.policy = policy
        self.router: Router = make_router(policy)
        self.replicas: list[Replica] = []
        self.unhealthy_since: float | None = time.monotonic()  # no healthy replica since (None: some healthy)

    def set_urls(self, urls: list[str]) -> bool:
        """Match the pool to a discovered URL list; True when it changed."""
        wanted = [u.rstrip("/") for u in urls]
        current = {r.url: r for r in self.replicas if not r.removed}
        changed = False
        for replica in self.replicas:
            if not replica.removed and replica.url not in wanted:
                replica.removed = True
                changed = True
        for url in wanted:
            if url not in current:
                self.replicas.append(Replica(self.model, url, self.capacity))
                changed = True
        # Forget removed replicas once they are idle.
        self.replicas = [r for r in self.replicas if not (r.removed and r.in_flight == 0)]
        if changed:  # a pool left without a healthy replica starts the unavailable clock (then 503)
            self._update_unhealthy_since()
        return changed

    def down_since(self) -> float | None:
        """Since when no replica could serve (None: one can, or the model is scaled to zero)."""
        if self.scales_to_zero and not any(not r.removed for r in self.replicas):
            return None
        return self.unhealthy_since

    def pick(self, blocks: Sequence[int] = (), extra: int = 0) -> Replica | None:
        """A replica with room (`extra`: slots beyond maxConcurrency allowed), chosen by the routing
        policy; None when none has room."""
        if extra:
            candidates = [r for r in self.replicas if r.accepts_beyond(extra)]
        elif len(self.replicas) == 1:
            only = self.replicas[0]
            return only if only.accepts else None
        else:
            candidates = [r for r in self.replicas if r.accepts]
        if not candidates:
            return None
        return self.router.choose(candidates, blocks)

    def has_room(self, extra: int = 0) -> bool:
        return any(r.accepts_beyond(extra) if extra else r.accepts for r in self.replicas)

    def mark(self, replica: Replica, healthy: bool, error: str | None = None) -> bool:
        """Record a health observation; True when the replica's health changed."""
        replica.last_error = error
        if replica.healthy == healthy:
            return False
        replica.healthy = healthy
        self._update_unhealthy_since()
        return True

    def _update_unhealthy_since(self) -> None:
        if any(r.healthy and not r.removed for r in self.replicas):
            self.unhealthy_since = None
        elif self.unhealthy_since is None:
            self.unhealthy_since = time.monotonic()

    @property
    def healthy_count(self) -> int:
        return sum(1 for r in self.replicas if r.healthy and not r.removed)
