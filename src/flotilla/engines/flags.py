"""How engine flag values are spelled, identically here and in the chart's templates.

Helm reads every number of a values file as a float64, and its templates print a whole number
without a fraction ("1", not "1.0"); the Python argument builders spell numbers the same way so
that a test can compare the two argument lists exactly.
"""

from __future__ import annotations

import json
from typing import Any


def number_flag(value: float | int) -> str:
    """1.0 -> "1", 0.9 -> "0.9": the chart template `flotilla.num` prints the same."""
    if isinstance(value, bool):
        raise TypeError("a flag number cannot be a bool")
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _whole_numbers_as_int(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _whole_numbers_as_int(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_whole_numbers_as_int(v) for v in node]
    if isinstance(node, float) and node.is_integer():
        return int(node)
    return node


def json_flag(value: Any) -> str:
    """Compact JSON with sorted keys, as Helm's `toJson` writes it (Go's encoding/json)."""
    return json.dumps(_whole_numbers_as_int(value), sort_keys=True, separators=(",", ":"))
