"""Which replica pools a spec needs, and how each one picks a replica.

One pool per model, named after it. A disaggregated model has two: its decode replicas under the
model's name (requests queue there, by priority) and its prefill replicas under NAME@prefill
(`flotilla gateway --endpoint NAME@prefill=URL`). A model's `routingPolicy` overrides the
gateway's `routing` for its pools.
"""

from __future__ import annotations

from dataclasses import dataclass

from flotilla.spec.models import ModelSpec
from flotilla.spec.root import FlotillaSpec

PREFILL_SUFFIX = "@prefill"


def prefill_pool_name(model: str) -> str:
    return model + PREFILL_SUFFIX


@dataclass(frozen=True)
class ReplicaGroup:
    name: str  # the pool's (and queue's) name
    model: ModelSpec
    capacity: int  # maxConcurrency of one replica
    policy: str  # least-loaded | round-robin | random | prefix-aware
    role: str | None = None  # prefill | decode | None


def replica_groups(spec: FlotillaSpec) -> list[ReplicaGroup]:
    groups: list[ReplicaGroup] = []
    for model in spec.models:
        policy = model.routing(spec.gateway.routing)
        capacity = model.max_concurrency or 1
        if model.roles is None:
            groups.append(ReplicaGroup(model.name, model, capacity, policy))
            continue
        decode, prefill = model.roles.decode, model.roles.prefill
        groups.append(ReplicaGroup(model.name, model, decode.max_concurrency or capacity, policy, "decode"))
        groups.append(
            ReplicaGroup(prefill_pool_name(model.name), model, prefill.max_concurrency or capacity, policy, "prefill")
        )
    return groups
