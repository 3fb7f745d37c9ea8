"""Engine option sections (a model's `sim:`, `llamacpp:`, `vllm:` ... key).

Each engine's options live with its descriptor in flotilla.engines.<kind>; they are re-exported
here for code that reads the spec.
"""

from flotilla.engines.llamacpp import LlamaCppOptions
from flotilla.engines.sglang import SglangOptions
from flotilla.engines.sim import SimOptions
from flotilla.engines.tgi import TgiOptions
from flotilla.engines.vllm import RopeScaling, VllmOptions

__all__ = ["LlamaCppOptions", "RopeScaling", "SglangOptions", "SimOptions", "TgiOptions", "VllmOptions"]
