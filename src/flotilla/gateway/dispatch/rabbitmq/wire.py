"""What travels through RabbitMQ: queue names and the small messages between gateways and schedulers.

Only tickets, grants and their bookkeeping cross the broker, never a request or response body.
A message's kind is its AMQP `type`; its body is orjson: a list of items of that kind (so what one
event-loop turn produces for one queue travels as one message), or [head, items] where a head is
named. A ticket's key is made by its gateway, unique across gateways (request ids come from
clients and are not trusted to be).

Gateway -> a model's scheduler queue (`reply_to` names the sending gateway's reply queue):
  TICKETS   items [key, token_name, priority, threshold, retry, prefix_blocks]   a request wants a slot
  RELEASES  items [key, replica_failed]                           a granted slot is free again
  CANCELS   items key                                             a waiting request gave up
  LEASES    [census_id, items [key, replica_url]]   the slots this gateway holds; census_id is the
            census it answers, null when sent unasked after a reconnect
Scheduler -> a gateway's reply queue (published `mandatory`: a gateway that is gone returns it):
  GRANTS    [model, items [key, replica_url]]
  REJECTS   [model, items [key, reason, detail]]   reason: "full" (threshold) or "unavailable"
The control exchange (fanout to every gateway's reply queue):
  CENSUS    [model, census_id]   a new scheduler asks every gateway for its slots of `model`
  DEAD      items gateway_id     that gateway's connection ended: its slots and tickets are void
A gateway's alive queue holds its TOMBSTONE [gateway_id] (watch.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

TICKETS = "tickets"
RELEASES = "releases"
CANCELS = "cancels"
LEASES = "leases"
GRANTS = "grants"
REJECTS = "rejects"
CENSUS = "census"
DEAD = "dead"
TOMBSTONE = "tombstone"

REJECT_FULL = "full"
REJECT_UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Names:
    """Every queue and exchange of one Flotilla installation lives under `prefix`."""

    prefix: str

    @property
    def control(self) -> str:
        return f"{self.prefix}.control"

    def scheduler(self, model: str) -> str:
        return f"{self.prefix}.sched.{model}"

    def reply(self, gateway_id: str) -> str:
        return f"{self.prefix}.gw.{gateway_id}"

    def alive(self, gateway_id: str) -> str:
        return f"{self.prefix}.alive.{gateway_id}"

    def gateway_of(self, reply_queue: str) -> str | None:
        head = f"{self.prefix}.gw."
        return reply_queue[len(head):] if reply_queue.startswith(head) else None


def encode(items: list) -> bytes:
    return orjson.dumps(items)


def decode(body: bytes) -> list:
    items = orjson.loads(body)
    if not isinstance(items, list):
        raise ValueError("a dispatch message body must be a JSON list")
    return items


def valid_tickets(items: list) -> bool:
    """Every item is [key, token, priority, threshold, retry, blocks]: checked whole before any is
    acted on, so a bad message is dropped entirely rather than half applied and never acknowledged."""
    return all(
        isinstance(t, list) and len(t) == 6 and isinstance(t[0], str) and isinstance(t[1], str)
        and isinstance(t[2], int) and isinstance(t[3], int) and isinstance(t[4], (bool, int))
        and isinstance(t[5], list) and all(isinstance(b, int) for b in t[5])
        for t in items
    )
