"""The gateway's OpenAPI document (built in Python, served at /openapi.json) against the gateway
itself: schemathesis generates requests from it, valid and invalid, and sends them to a real
gateway in front of a real sim engine. Zero 5xx, and every answer as documented."""

from __future__ import annotations

import json
import urllib.request

import pytest
import schemathesis
from gwstack import STAFF, spec_for
from hypothesis import HealthCheck, settings
from procs import gateway, sim_engine
from schemathesis.checks import positive_data_acceptance

from flotilla.gateway.openapi import openapi_document

EXAMPLES_PER_OPERATION = 100  # a few hundred requests in all: enough to find 5xx, kind to 2 shared cores


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openapi")
    with sim_engine(tmp, ttft_ms=1, itl_ms=1, deterministic=True) as sim, gateway(
        tmp, spec_for(), {"chat": [sim]}
    ) as gw:
        yield gw


# The document as the gateway builds it; test_the_gateway_serves_this_document checks it is the one served.
schema = schemathesis.openapi.from_dict(openapi_document(["chat"]))


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_documented_operation_answers_as_documented_and_never_5xx(case, gateway_url):
    # Schema-valid bodies may still be refused by the engine (context length, `n`), and the gateway
    # relays that 400 unchanged by design: "positive data acceptance" cannot hold for a proxy.
    case.call_and_validate(
        base_url=gateway_url, headers={"Authorization": f"Bearer {STAFF}"}, timeout=30,
        excluded_checks=[positive_data_acceptance],
    )


def test_the_gateway_serves_this_document(gateway_url):
    with urllib.request.urlopen(gateway_url + "/openapi.json", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        assert json.loads(resp.read()) == json.loads(json.dumps(openapi_document(["chat"])))


def test_the_document_names_every_route():
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) >= {
        "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/models/{model}",
        "/health/live", "/health/ready", "/metrics", "/openapi.json",
    }
