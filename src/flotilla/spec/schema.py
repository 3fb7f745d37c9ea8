"""JSON Schema of the spec: for editors, `flotilla schema`, and the chart's values.schema.json."""

from __future__ import annotations

import json
from typing import Any

from flotilla.spec.root import FlotillaSpec


def spec_json_schema(title: str = "Flotilla spec") -> dict[str, Any]:
    schema = FlotillaSpec.model_json_schema(by_alias=True, mode="validation")
    # pydantic writes JSON Schema 2020-12 ($defs, $ref beside other keywords); say so, so that
    # validators (Helm's among them) read it by those rules.
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = title
    return schema


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def spec_json_schema_text() -> str:
    return schema_text(spec_json_schema())
