"""The gateway's OpenAPI document for the Backstage API entity: the one the gateway serves at
/openapi.json (`flotilla.gateway.openapi.openapi_document()`), so the portal and the gateway
never disagree."""

from __future__ import annotations

from typing import Any

from flotilla.gateway.openapi import openapi_document


def gateway_openapi() -> dict[str, Any]:
    return openapi_document()
