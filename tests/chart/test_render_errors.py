"""Bad combinations fail the render with a message that names the problem and the way out."""

from __future__ import annotations

import pytest

from conftest import model_spec, render
from flotilla.chart.helm import HelmError


def render_error(values) -> str:
    with pytest.raises(HelmError) as info:
        render(values)
    return info.value.stderr


def test_sqlite_with_two_gateway_replicas():
    values = model_spec(name="m", engine="sim")
    values["gateway"]["replicas"] = 2
    values["rabbitmq"] = {"type": "internal"}
    message = render_error(values)
    assert "gateway.replicas is 2 but tokenDatabase.type is sqlite" in message
    assert "postgresql" in message


def test_two_gateway_replicas_without_a_broker():
    values = model_spec(name="m", engine="sim")
    values["gateway"]["replicas"] = 2
    values["tokenDatabase"] = {"type": "postgresql"}
    message = render_error(values)
    assert "gateway.replicas is 2 but rabbitmq.type is none" in message
    assert "priorities would hold only within one pod" in message


def test_two_gateway_replicas_are_fine_with_postgresql_and_rabbitmq():
    values = model_spec(name="m", engine="sim")
    values["gateway"]["replicas"] = 2
    values["tokenDatabase"] = {"type": "postgresql"}
    values["rabbitmq"] = {"type": "internal"}
    assert render(values)


def test_unresolved_token_reference_without_a_tokens_secret():
    values = model_spec(name="m", engine="sim")
    values["gateway"]["tokens"][0]["token"] = "${STAFF_TOKEN}"
    message = render_error(values)
    assert "gateway.tokens[0] (staff)" in message and "${STAFF_TOKEN}" in message
    assert "tokensSecret" in message
    values["gateway"]["tokensSecret"] = "my-tokens"
    assert render(values)


def test_rabbitmq_dispatcher_needs_a_broker_section():
    values = model_spec(name="m", engine="sim")
    values["gateway"]["dispatcher"] = {"kind": "rabbitmq", "url": "amqp://guest:guest@localhost:5672/"}
    assert "set rabbitmq.type" in render_error(values)


def test_llamacpp_local_path_cannot_be_deployed():
    message = render_error(model_spec(name="m", engine="llamacpp", llamacpp={"model": "./models/tiny.gguf"}))
    assert "models[m].llamacpp.model" in message and "absolute .gguf path" in message


def test_model_names_taken_by_chart_objects():
    assert "taken by the chart" in render_error(model_spec(name="broker", engine="sim"))


def test_ingress_and_http_route_together():
    values = model_spec(name="m", engine="sim")
    values["ingress"] = {"enabled": True}
    values["httpRoute"] = {"enabled": True, "parentRefs": [{"name": "gw"}]}
    assert "expose the gateway one way" in render_error(values)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"models": [{"name": "m", "engine": "sim", "replicaz": 2}]}, "additional properties 'replicaz' not allowed"),
        ({"models": [{"name": "m", "engine": "gpu-magic"}]}, "/models/0/engine"),
        ({"models": [{"name": "m", "engine": "sim"}], "gateway": {"replicas": "two"}}, "/gateway/replicas"),
        ({"models": [{"name": "m", "engine": "vllm", "vllm": {"model": "o/m", "gpuMemoryUtilization": 1.5}}]},
         "/models/0/vllm/gpuMemoryUtilization"),
    ],
)
def test_values_schema_rejects_bad_values(values, expected):
    assert expected in render_error(values)
