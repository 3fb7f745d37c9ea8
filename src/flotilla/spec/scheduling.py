"""How the gateway orders waiting requests and chooses replicas: per gateway, overridable per model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flotilla.spec.base import SpecModel

RoutingPolicy = Literal["least-loaded", "round-robin", "prefix-aware"]


class SchedulingSpec(SpecModel):
    policy: Literal["strict", "weighted"] = Field(
        "strict",
        description="strict: the highest priority always first (lower ones may wait for ever under sustained "
        "load); weighted: priorities are shares (10 gets ten grants for each one of 1); 0 is background.",
    )
    aging_s: float | None = Field(
        None, gt=0,
        description="A request waiting longer than this goes before every request that has not (oldest first): "
        "a bound on how long any priority can be starved. None: no aging.",
    )


class PriorityBurstSpec(SpecModel):
    """Slots a replica keeps, beyond maxConcurrency, for high-priority requests.

    maxConcurrency still counts every request on a replica; requests at `min_priority` or above may
    go `slots` beyond it. A high-priority request then starts at once instead of waiting for a
    lower one to finish, and as lower ones finish the replica comes back to maxConcurrency. The
    engine must have room for the extra sequences (vLLM: max_num_seqs and KV cache above
    maxConcurrency); with vLLM's priority scheduling the engine itself preempts its lowest-priority
    sequence if memory runs short.
    """

    min_priority: int = Field(..., ge=0, description="Requests at this effective priority or above may use the slots.")
    slots: int = Field(..., ge=1, description="Extra slots per replica for them.")
