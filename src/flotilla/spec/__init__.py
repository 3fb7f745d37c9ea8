"""The declarative model of a Flotilla deployment.

Names are imported on first use: engine descriptors (flotilla.engines) import spec.base, and the
model type (spec.models) is built from their registry, so importing this package must not pull
spec.models in by itself.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DispatcherSpec": "flotilla.spec.gateway",
    "GatewaySpec": "flotilla.spec.gateway",
    "TokenSpec": "flotilla.spec.gateway",
    "LlamaCppOptions": "flotilla.spec.engines",
    "SimOptions": "flotilla.spec.engines",
    "VllmOptions": "flotilla.spec.engines",
    "SpecError": "flotilla.spec.loader",
    "load_spec": "flotilla.spec.loader",
    "load_spec_text": "flotilla.spec.loader",
    "parse_spec": "flotilla.spec.loader",
    "ModelSpec": "flotilla.spec.models",
    "FlotillaSpec": "flotilla.spec.root",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flotilla.spec' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
