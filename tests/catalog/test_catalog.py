"""Generated portal files: TypeScript types of the values (json-schema-to-typescript), the Backstage
catalog entry, and the gateway's OpenAPI document. Stale files fail; the entry is checked with
Backstage's own validators; the types are compiled by tsc against every example spec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nodeproj import installed  # noqa: E402

from flotilla.catalog.__main__ import GENERATORS, TYPES_FILE, stale_files
from flotilla.catalog.backstage import CATALOG_FILE
from flotilla.catalog.node import PORTAL_TOOLS, REPO
from flotilla.catalog.openapi import gateway_openapi
from flotilla.gateway.openapi import openapi_document


@pytest.fixture(scope="module")
def tools() -> Path:
    return installed(PORTAL_TOOLS)


def node(tools: Path, script: str, stdin: str) -> str:
    done = subprocess.run(["node", str(tools / script)], input=stdin, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def catalog_entities() -> list[dict]:
    """The entities as Backstage's catalog sees them: `$text` placeholders replaced by the file's text."""
    path = REPO / CATALOG_FILE
    entities = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for entity in entities:
        definition = entity.get("spec", {}).get("definition")
        if isinstance(definition, dict) and set(definition) == {"$text"}:
            entity["spec"]["definition"] = (path.parent / definition["$text"]).read_text()
    return entities


def test_generated_files_are_up_to_date(tools):
    assert stale_files() == [], "run: python -m flotilla.catalog"


def test_check_mode_reports_a_stale_file(tools, tmp_path):
    for name in GENERATORS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((REPO / name).read_text())
    assert stale_files(tmp_path) == []
    (tmp_path / TYPES_FILE).write_text("export interface FlotillaValues {}\n")
    assert stale_files(tmp_path) == [TYPES_FILE]
    done = subprocess.run([sys.executable, "-m", "flotilla.catalog", "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_catalog_entry_passes_backstages_validators(tools):
    entities = catalog_entities()
    assert [e["kind"] for e in entities] == ["Component", "API"]
    results = json.loads(node(tools, "validate-backstage.mjs", json.dumps(entities)))
    assert results == [
        {"kind": "Component", "name": "flotilla", "ok": True, "error": None},
        {"kind": "API", "name": "flotilla-gateway", "ok": True, "error": None},
    ]
    component, api = entities
    assert component["spec"]["providesApis"] == [api["metadata"]["name"]]


def test_backstages_validators_do_reject_a_broken_entry(tools):
    component, api = catalog_entities()
    no_owner = {**component, "spec": {k: v for k, v in component["spec"].items() if k != "owner"}}
    bad_name = {**api, "metadata": {**api["metadata"], "name": "Flotilla Gateway!"}}
    object_definition = {**api, "spec": {**api["spec"], "definition": {"$text": "./x.json"}}}  # unresolved
    results = json.loads(node(tools, "validate-backstage.mjs", json.dumps([no_owner, bad_name, object_definition])))
    assert [r["ok"] for r in results] == [False, False, False]
    assert "owner" in results[0]["error"] and "name" in results[1]["error"]


def test_api_definition_is_the_gateways_openapi_document():
    _, api = catalog_entities()
    document = json.loads(api["spec"]["definition"])
    assert document == gateway_openapi()
    assert document["openapi"].startswith("3.")
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models"} <= set(document["paths"])
    assert document == openapi_document()  # the document the gateway serves, not a stand-in


def test_types_compile_and_every_example_spec_type_checks(tools, tmp_path):
    """tsc --strict: the .d.ts is valid TypeScript and the examples (and the chart's values.yaml) are
    FlotillaValues; a spec with an unknown key or a wrong type does not type-check."""
    # examples/opea holds the seed design's own format (opea_micro_services), not Flotilla specs.
    examples = sorted(p for p in (REPO / "examples").rglob("*.yaml") if "opea" not in p.parts)
    examples.append(REPO / "charts/flotilla/values.yaml")
    lines = [f'import type {{ FlotillaValues }} from "{REPO / TYPES_FILE.removesuffix(".d.ts")}";']
    for i, path in enumerate(examples):
        lines.append(f"export const example{i}: FlotillaValues = {json.dumps(yaml.safe_load(path.read_text()))};")
    (tmp_path / "examples.ts").write_text("\n".join(lines) + "\n")
    (tmp_path / "wrong.ts").write_text("\n".join([
        lines[0],
        'export const engine: FlotillaValues = {"models": [{"name": "x", "engine": "warp"}]};',
        'export const replicas: FlotillaValues = {"models": [{"name": "x", "engine": "sim", "replicas": "2"}]};',
        'export const unknown: FlotillaValues = {"models": [{"name": "x", "engine": "sim", "colour": "red"}]};',
    ]) + "\n")
    tsc = [str(tools / "node_modules" / ".bin" / "tsc"), "--strict", "--noEmit", "--skipLibCheck", "false"]
    ok = subprocess.run(tsc + [str(tmp_path / "examples.ts")], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stdout
    wrong = subprocess.run(tsc + [str(tmp_path / "wrong.ts")], capture_output=True, text=True, timeout=300)
    assert wrong.returncode != 0
    errors = [line for line in wrong.stdout.splitlines() if "error TS" in line]
    assert [e.split("wrong.ts(")[1].split(",")[0] for e in errors] == ["2", "3", "4"], wrong.stdout
    assert "'\"warp\"'" in errors[0] and '"colour"' in errors[2]
