"""The names clients may send as `model`: each spec model, and each of its LoRA adapters.

An adapter is served by its base model's replicas and waits in the base model's queue; only the
name the engine receives differs (the adapter's, as vLLM's --lora-modules registered it).
"""

from __future__ import annotations

from flotilla.gateway.app import ServedModel
from flotilla.spec.models import ModelSpec
from flotilla.spec.root import FlotillaSpec


def upstream_headers(model: ModelSpec) -> dict[str, str]:
    return {"Authorization": f"Bearer {model.api_key}"} if model.api_key else {}


def served_models(spec: FlotillaSpec) -> dict[str, ServedModel]:
    served: dict[str, ServedModel] = {}
    for model in spec.models:
        headers = upstream_headers(model)
        prefix_aware = model.routing(spec.gateway.routing) == "prefix-aware"  # tickets carry prompt blocks
        served[model.name] = ServedModel(
            model, model.upstream_model_name, headers, model.forwards_vllm_priority, prefix_aware=prefix_aware
        )
        for lora in model.loras:
            served[lora.name] = ServedModel(
                model, lora.name, headers, model.forwards_vllm_priority, prefix_aware=prefix_aware
            )
    return served
