"""Every engine kind, registered here and nowhere else.

The spec's model type (its `engine` choices and option sections), the chart's schema, defaults and
argument templates, the gateway's load gauges and `flotilla up`'s launchers all read this dict.
"""

from __future__ import annotations

from flotilla.engines import external, llamacpp, onnx, sglang, sim, tei, tgi, vllm
from flotilla.engines.base import Engine

ENGINES: dict[str, Engine] = {
    e.kind: e
    for e in (
        sim.ENGINE, llamacpp.ENGINE, vllm.ENGINE, sglang.ENGINE, tgi.ENGINE, tei.ENGINE, onnx.ENGINE, external.ENGINE,
    )
}


class UnknownEngine(ValueError):
    """No engine of that kind."""


def get_engine(kind: str) -> Engine:
    try:
        return ENGINES[kind]
    except KeyError:
        raise UnknownEngine(f"unknown engine {kind!r}; known engines: {', '.join(ENGINES)}") from None
