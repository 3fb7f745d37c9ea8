"""The declarative model of a Flotilla deployment."""

from flotilla.spec.engines import LlamaCppOptions, SimOptions, VllmOptions
from flotilla.spec.gateway import DispatcherSpec, GatewaySpec, TokenSpec
from flotilla.spec.loader import SpecError, load_spec, load_spec_text, parse_spec
from flotilla.spec.models import ModelSpec
from flotilla.spec.root import FlotillaSpec

__all__ = [
    "DispatcherSpec",
    "FlotillaSpec",
    "GatewaySpec",
    "LlamaCppOptions",
    "ModelSpec",
    "SimOptions",
    "SpecError",
    "TokenSpec",
    "VllmOptions",
    "load_spec",
    "load_spec_text",
    "parse_spec",
]
