"""`flotilla up` plans the serving features too: a disaggregated model's two roles with their
pools, a model's env, and an engine config file written where the engine is told to read it."""

from __future__ import annotations

from pathlib import Path

import yaml

from flotilla.engines import get_engine
from flotilla.engines.common import local_config_files, local_config_path
from flotilla.local.plan import build_plan
from flotilla.local.ports import free_port
from flotilla.spec.loader import parse_spec
from flotilla.spec.models import ModelSpec


def test_plan_starts_both_roles_and_names_their_pools_for_the_gateway(tmp_path):
    spec = parse_spec({
        "models": [{"name": "big", "engine": "sim", "roles": {"prefill": {"replicas": 2}, "decode": {"replicas": 1}},
                    "env": [{"name": "SIM_NOTE", "value": "x"}, {"name": "FROM_K8S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}],
        "gateway": {"port": free_port()},
    })
    plan = build_plan(spec, tmp_path / "spec.yaml", tmp_path)
    roles = [(e.name, e.model, e.argv[e.argv.index("--role") + 1]) for e in plan.engines]
    assert roles == [("engine-big-decode-0", "big", "decode"), ("engine-big-prefill-0", "big@prefill", "prefill"),
                     ("engine-big-prefill-1", "big@prefill", "prefill")]
    assert all(e.env == (("SIM_NOTE", "x"),) for e in plan.engines)  # valueFrom is the chart's
    flags = plan.gateway.argv
    assert sum(1 for f in flags if f.startswith("big@prefill=")) == 2 and sum(1 for f in flags if f.startswith("big=")) == 1


def test_inline_config_is_written_where_the_local_command_points():
    model = ModelSpec.model_validate({"name": "cfgtest", "engine": "vllm", "vllm": {"model": "o/m"},
                                      "extraConfig": {"inline": {"enable-prefix-caching": True}}})
    path = local_config_files(model)
    assert path == local_config_path("cfgtest", None) and yaml.safe_load(Path(path).read_text()) == {"enable-prefix-caching": True}
    ctx = get_engine("vllm").context(model, 8000, host="127.0.0.1", target="local")
    args = get_engine("vllm").rules.python_args(ctx)
    assert args[args.index("--config") + 1] == str(path)


def test_extra_config_needs_an_engine_that_reads_one():
    import pytest

    from flotilla.spec.loader import SpecError

    with pytest.raises(SpecError, match="needs an engine that reads a config file"):
        parse_spec({"models": [{"name": "c", "engine": "llamacpp", "extraConfig": {"inline": {"a": 1}}}]})
    with pytest.raises(SpecError, match="exactly one of `inline` or `configMapRef`"):
        parse_spec({"models": [{"name": "c", "engine": "vllm", "vllm": {"model": "o/m"}, "extraConfig": {}}]})
