"""Run checkov (kubernetes framework) on the chart's rendering of every example; report what fails.

    python scripts/checkov_examples.py            # checkov from PATH, or from $CHECKOV_VENV
    make checkov                                  # installs checkov into its own venv first

A failed check counts unless the chart README's "Security scan" table excuses it for that kind of
object (`all`, `gpu-engines`: vLLM/TGI/SGLang Deployments, `helm-test`: the test Pod), each with
its reason. Exit 0 when nothing else fails. checkov lives in its own venv (it pins many packages).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "flotilla"
README = CHART / "README.md"
EXAMPLES = sorted((REPO / "examples" / "k8s").glob("*.yaml"))
_ROW = re.compile(r"^\|\s*(CKV2?_K8S_\d+)\s*\|\s*(all|gpu-engines|helm-test)\s*\|")


def excused_checks(readme: Path = README) -> dict[str, str]:
    """check id -> scope, from the README's "Security scan" table."""
    return {m.group(1): m.group(2) for line in readme.read_text().splitlines() if (m := _ROW.match(line))}


def checkov_binary() -> str | None:
    venv = Path(os.environ.get("CHECKOV_VENV", Path.home() / ".cache" / "flotilla" / "checkov"))
    for candidate in (shutil.which("checkov"), venv / "bin" / "checkov"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


def _scope_of(doc: dict) -> set[str]:
    labels = doc.get("metadata", {}).get("labels", {})
    scopes = {"all"}
    if doc.get("kind") == "Deployment" and labels.get("flotilla/engine") in ("vllm", "tgi", "sglang"):
        scopes.add("gpu-engines")
    if doc.get("kind") == "Pod" and labels.get("app.kubernetes.io/component") == "test":
        scopes.add("helm-test")
    return scopes


def scan(example: Path, checkov: str, excused: dict[str, str]) -> list[str]:
    """Failed checks on this example's rendering that the README does not excuse."""
    sys.path.insert(0, str(REPO / "src"))
    from flotilla.chart.render import helm_template

    rendered = helm_template(example.read_text(), release="llm", namespace="llm", chart=CHART, include_tests=True)
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered) if d}
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "manifests.yaml").write_text(rendered)
        done = subprocess.run([checkov, "-d", work, "--framework", "kubernetes", "--quiet", "--compact", "-o", "json"],
                              capture_output=True, text=True, timeout=600)
    if not done.stdout.strip():
        return [f"checkov produced no report: {done.stderr[-2000:]}"]
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    problems = []
    for report in reports:
        for failed in report.get("results", {}).get("failed_checks", []):
            kind, _, name = failed["resource"].split(".", 2)
            doc = docs.get((kind, name), {})
            if excused.get(failed["check_id"]) in _scope_of(doc):
                continue
            problems.append(f"{example.stem}: {failed['check_id']} {failed['resource']}: {failed['check_name']}")
    return problems


def main() -> int:
    checkov = checkov_binary()
    if checkov is None:
        print("checkov is not installed: run `make checkov` (it installs checkov into its own venv)", file=sys.stderr)
        return 2
    excused = excused_checks()
    problems = [p for example in EXAMPLES for p in scan(example, checkov, excused)]
    for problem in problems:
        print(problem)
    print(f"checkov: {len(EXAMPLES)} examples, {len(problems)} failed checks outside the README's list ({len(excused)} excused)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
