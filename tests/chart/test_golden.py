"""Golden files pin the shape of what `flotilla render --format compose|gmc` writes for
examples/rag.yaml and the seed's ChatQnA YAML (examples/opea/chatqna.yaml). A change of shape
fails here until the files are regenerated and the diff reviewed:

    FLOTILLA_UPDATE_GOLDEN=1 .venv/bin/pytest tests/chart/test_golden.py

The GMC goldens hold what the GMC converter makes (the GMConnector, OPEA's microservices, the
vector stores); the engines it takes from the chart are pinned by the chart's own tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from chartkit import REPO
from flotilla.chart.compose import compose_project
from flotilla.chart.gmc import gmc_manifests
from flotilla.chart.spec_source import read_spec_source

GOLDEN = Path(__file__).parent / "golden"
SPECS = {"rag": REPO / "examples" / "rag.yaml", "chatqna": REPO / "examples" / "opea" / "chatqna.yaml"}
UPDATE = os.environ.get("FLOTILLA_UPDATE_GOLDEN") == "1"


def rendered(target: str, name: str) -> dict[str, str]:
    source = read_spec_source(SPECS[name])
    if target == "compose":
        # Paths in the project are relative to its directory: render as if written into the golden one.
        return compose_project(source, GOLDEN / f"{target}-{name}").files()
    manifests, _ = gmc_manifests(source, release=name, namespace="gmcsample")
    files = {}
    for manifest in manifests:
        labels = yaml.safe_load(manifest.text)["metadata"].get("labels") or {}
        if "helm.sh/chart" not in labels:
            files[manifest.file_name] = manifest.text
    return files


@pytest.mark.parametrize("target", ["compose", "gmc"])
@pytest.mark.parametrize("name", list(SPECS))
def test_output_matches_the_golden_files(target, name):
    folder = GOLDEN / f"{target}-{name}"
    files = rendered(target, name)
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.iterdir():
            stale.unlink()
        for file_name, text in files.items():
            (folder / file_name).write_text(text)
    on_disk = {p.name: p.read_text() for p in folder.iterdir()} if folder.is_dir() else {}
    assert sorted(on_disk) == sorted(files), f"files differ from {folder} (regenerate: see this module's docstring)"
    for file_name, text in files.items():
        assert on_disk[file_name] == text, f"{folder / file_name} differs (regenerate: see this module's docstring)"
