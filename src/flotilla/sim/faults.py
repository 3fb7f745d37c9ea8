"""Fault injection: seeded random faults, and a per-request header to force one in tests.

`x-sim-fault: error` answers HTTP 500 with an OpenAI error body. `x-sim-fault: die-mid-stream`
sends half the tokens of a stream and then closes the connection without [DONE] (on a
non-streaming request: closes the connection without any response). `x-sim-fault: none`
suppresses random faults for that request. Harmless in production: only the sim reads it.
"""

from __future__ import annotations

import enum
import random

from flotilla.sim.errors import bad_request

FAULT_HEADER = "x-sim-fault"


class Fault(enum.Enum):
    ERROR = "error"
    DIE_MID_STREAM = "die-mid-stream"


_FORCED = {"error": Fault.ERROR, "die-mid-stream": Fault.DIE_MID_STREAM, "none": None}


class FaultInjector:
    def __init__(self, error_rate: float, die_mid_stream_rate: float, seed: int) -> None:
        self._error_rate = error_rate
        self._die_rate = die_mid_stream_rate
        # Its own generator, so faults do not shift the output-length draws.
        self._rng = random.Random(f"faults:{seed}")

    def decide(self, forced: str | None, stream: bool) -> Fault | None:
        if forced is not None:
            try:
                return _FORCED[forced.strip().lower()]
            except KeyError:
                raise bad_request(
                    f"header {FAULT_HEADER}: {forced!r} is not one of {', '.join(_FORCED)}", FAULT_HEADER
                ) from None
        if self._error_rate and self._rng.random() < self._error_rate:
            return Fault.ERROR
        if stream and self._die_rate and self._rng.random() < self._die_rate:
            return Fault.DIE_MID_STREAM
        return None
