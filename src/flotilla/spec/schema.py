"""JSON Schema of the spec: for editors, `flotilla schema`, and the chart's values.schema.json."""

from __future__ import annotations

import json
from typing import Any

from flotilla.spec.root import FlotillaSpec


def spec_json_schema() -> dict[str, Any]:
    schema = FlotillaSpec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["title"] = "Flotilla spec"
    return schema


def spec_json_schema_text() -> str:
    return json.dumps(spec_json_schema(), indent=2, sort_keys=True) + "\n"
