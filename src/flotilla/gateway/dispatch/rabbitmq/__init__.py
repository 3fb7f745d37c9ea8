"""The RabbitMQ dispatcher: many gateway processes, one queue per model, one set of slot counts.

Where the deciding happens, and why. The design this grew from puts a consumer beside every engine
replica: it takes a ticket off the model's priority queue when its replica has room and answers
with the replica's address. We elect the consumer among the gateways instead: every gateway
consumes every model's scheduler queue, and RabbitMQ's single-active-consumer makes exactly one of
them the model's scheduler, handing its role (and the tickets it held) to the next when its
connection ends. Reasons:

- Exact rules, the same as one gateway's: the scheduler sees every waiting ticket, so it keeps
  Flotilla's order (any integer priority, tokens of equal priority taking turns, retries first)
  and counts thresholds across all gateways exactly. A RabbitMQ priority queue has at most 255
  levels and is first-in-first-out within a level: no fairness between tokens, and per-replica
  consumers could not count a token's waiting requests anywhere but in a shared counter.
- Capacity is counted in one place: every grant comes from the scheduler, which knows every slot
  taken on every replica by every gateway, refined by the engine's own load (its /metrics), as a
  single gateway does. Per-replica consumers would need a prefetch per replica kept in step with
  that load, and a sidecar in every engine pod (and none is possible for an external URL).
- Nothing new to deploy or supervise: no sidecar per engine, no extra process locally; the
  gateways already watch every replica's health and load.

Costs, stated: a request at a gateway that is not the scheduler crosses the broker twice before it
is sent (its ticket, then its grant: see benchmarks/dispatcher_scaleout.py); the scheduler's own
gateway decides in-process. Thresholds are exact except during a takeover's census (at most
`census_timeout_s`), when tickets line up without the threshold check because free slots are not
yet known. A gateway whose connection drops keeps its running requests; until it has reconnected
and reported them, the scheduler does not count them.

Modules: wire.py (names, message kinds), link.py (connection, ordered outbox, confirms),
scheduler.py (the elected scheduler of one model), watch.py (noticing gateways that are gone),
dispatcher.py (a gateway's side: tickets out, grants in). README's "Scaling out" says what happens
on each fault.
"""

from flotilla.gateway.dispatch.rabbitmq.dispatcher import RabbitMqDispatcher

__all__ = ["RabbitMqDispatcher"]
