"""values.schema.json and files/defaults.yaml are generated from the pydantic spec, and values.yaml's
defaults are the spec's: a test fails when any of them is stale."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import yaml

from chartkit import CHART, EXAMPLES, REPO
from flotilla.chart.schema import chart_defaults, stale_files
from flotilla.spec.loader import parse_spec
from flotilla.spec.root import FlotillaSpec


def test_generated_files_are_up_to_date():
    assert stale_files(CHART) == [], "run: python -m flotilla.chart.schema"


def test_check_mode_exits_nonzero_on_a_stale_file(tmp_path):
    for name in ("Chart.yaml", "values.schema.json", "files/defaults.yaml", "templates/_engine_args.tpl"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((CHART / name).read_text())
    assert stale_files(tmp_path) == []
    (tmp_path / "files/defaults.yaml").write_text("model: {}\n")
    assert stale_files(tmp_path) == ["files/defaults.yaml"]
    ok = subprocess.run([sys.executable, "-m", "flotilla.chart.schema", "--check"], cwd=REPO, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    stale = subprocess.run(
        [sys.executable, "-m", "flotilla.chart.schema", "--check"],
        capture_output=True, text=True, env={"FLOTILLA_CHART_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert stale.returncode == 1 and "files/defaults.yaml" in stale.stderr


def _leaves(node: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    if isinstance(node, dict) and node:
        return [leaf for k, v in node.items() for leaf in _leaves(v, path + (k,))]
    return [(path, node)]


def test_values_yaml_defaults_equal_the_spec_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    spec = parse_spec(values, "values.yaml")
    defaults = FlotillaSpec.model_validate({"models": values["models"]}).model_dump(by_alias=True, mode="json")
    assert spec.gateway.tokens == []
    mismatches = []
    for path, value in _leaves({k: v for k, v in values.items() if k != "models"}):
        expected: Any = defaults
        for key in path:
            expected = expected[key]
        if expected != value:
            mismatches.append(f"{'.'.join(path)}: values.yaml {value!r}, spec {expected!r}")
    assert mismatches == []


def test_model_defaults_are_the_specs():
    defaults = chart_defaults()
    assert defaults["model"]["probes"]["startupTimeoutSeconds"] == 1800
    assert defaults["model"]["shmSize"] == "8Gi"
    assert defaults["model"]["replicas"] == 1
    assert defaults["engines"]["vllm"]["schedulingPolicy"] == "priority"
    assert defaults["engines"]["vllm"]["tensorParallelSize"] == 1
    assert "model" not in defaults["engines"]["vllm"]  # required: no default
    assert defaults["model"]["hfToken"]["secretKey"] == "HF_TOKEN"
    assert "vllm" not in defaults["model"]


def test_every_example_is_a_valid_spec():
    assert len(EXAMPLES) >= 4
    for path in EXAMPLES:
        data = yaml.safe_load(path.read_text())
        # Token values are ${VAR} references for `flotilla up`; the chart reads them from tokensSecret.
        spec = parse_spec(data, str(path), env={"STAFF_TOKEN": "s" * 16, "STUDENT_TOKEN": "t" * 16, "ML_TEAM_TOKEN": "m" * 16})
        assert spec.models


def test_kubernetes_models_are_generated_from_the_kubernetes_schemas():
    ok = subprocess.run([sys.executable, "-m", "flotilla.chart.kubemodels", "--check"], cwd=REPO, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr + "run: python -m flotilla.chart.kubemodels"
