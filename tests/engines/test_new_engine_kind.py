"""Adding an engine kind takes one module (its descriptor, written here as a test would) plus one
line in flotilla/engines/registry.py (here: an entry added to ENGINES for the test). The spec's
model type, the gateway's load gauges, `flotilla up`'s command and the chart's container and
arguments all follow from the descriptor, with no other change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from pydantic import Field

from flotilla.engines import registry
from flotilla.engines.base import ContainerDefaults, Engine
from flotilla.engines.rules import Extra, Host, Lit, Opt, Port, Rules, Served
from flotilla.gateway.health import engine_load_from_metrics
from flotilla.spec.base import SpecModel
from flotilla.spec.models import build_model_spec

CHART = Path(__file__).resolve().parents[2] / "charts" / "flotilla"


# --- the one module a new engine kind needs ------------------------------------------------------
class ToyOptions(SpecModel):
    """A toy OpenAI server."""

    weights: str = Field(..., description="What to serve.")
    slots: int = Field(3, ge=1)
    verbose: bool = False
    extra_args: list[str] = Field(default_factory=list)


class ToyEngine(Engine):
    kind = "toy"
    options = ToyOptions
    options_required = True
    rules = Rules(args=(
        Lit("serve"), Opt("--weights", "toy.weights"), Host(), Port(), Served("--name"),
        Opt("--slots", "toy.slots", number=True), Extra("toy.extraArgs"),
    ))
    container = ContainerDefaults("example.org/toy-server", "1.2.3", 9090, ("toy",))
    health_path = "/ready"
    load_gauges = ("toy_active", "toy_queued")

    def max_concurrency(self, options: ToyOptions | None) -> int:
        return options.slots if options else 3

    def local_command(self, model, port: int) -> list[str]:
        return ["toy", *self.server_args(model, port, host="127.0.0.1")]


TOY = ToyEngine()
# -------------------------------------------------------------------------------------------------


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(registry.ENGINES, "toy", TOY)  # the registration line
    return registry.ENGINES


def test_the_spec_gateway_and_launcher_follow_the_descriptor(toy_registered):
    ModelSpec = build_model_spec(toy_registered)
    model = ModelSpec.model_validate({"name": "t", "engine": "toy", "toy": {"weights": "w1", "slots": 5}})
    assert model.max_concurrency == 5
    assert "toy" in ModelSpec.model_json_schema(by_alias=True)["properties"]
    with pytest.raises(ValueError, match="needs a `toy:` section"):
        ModelSpec.model_validate({"name": "t", "engine": "toy"})
    engine = registry.get_engine("toy")
    assert engine.local_command(model, 7000) == ["toy", "serve", "--weights", "w1", "--host", "127.0.0.1",
                                                  "--port", "7000", "--name", "t", "--slots", "5"]
    assert engine_load_from_metrics(b"toy_active 2\ntoy_queued 1\n", engine.gauges_for(model)) == 3


def test_the_chart_renders_the_new_kind_from_the_descriptor(toy_registered, tmp_path):
    from flotilla.chart.render import helm_template
    from flotilla.chart.schema import chart_defaults_text, engine_args_text

    chart = tmp_path / "flotilla"
    shutil.copytree(CHART, chart)
    (chart / "values.schema.json").unlink()  # the checked-in schema predates the toy kind
    (chart / "files/defaults.yaml").write_text(chart_defaults_text())
    (chart / "templates/_engine_args.tpl").write_text(engine_args_text())
    values = {"models": [{"name": "t", "engine": "toy", "toy": {"weights": "w1", "extraArgs": ["--x"]}}]}
    docs = [d for d in yaml.safe_load_all(helm_template(yaml.safe_dump(values), release="rel", chart=chart)) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "rel-flotilla-t")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    model = build_model_spec(toy_registered).model_validate(values["models"][0])
    assert container["image"] == "example.org/toy-server:1.2.3" and container["command"] == ["toy"]
    assert container["args"] == TOY.server_args(model, 9090)
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    gateway = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "rel-flotilla")
    assert "t=dns+http://rel-flotilla-t.default.svc.cluster.local:9090" in gateway["spec"]["template"]["spec"]["containers"][0]["args"]
