"""`helm template` of the bundled chart with a spec as values, split into one file per manifest."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from flotilla.chart.helm import run_helm
from flotilla.chart.paths import chart_dir
from flotilla.spec.loader import load_spec_text
from flotilla.spec.root import FlotillaSpec

_DOCUMENT_SEPARATOR = re.compile(r"^---\s*$", re.MULTILINE)
_UNSAFE_FILE_CHARS = re.compile(r"[^a-z0-9.-]+")


class _KeepUnsetReferences(Mapping[str, str]):
    """The environment, where a variable that is not set stays a literal ${NAME} reference.

    The chart resolves references itself (from Secrets, in the pod), so validating a spec for the
    chart must not require them here.
    """

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ

    def __getitem__(self, name: str) -> str:
        return self._environ.get(name, "${" + name + "}")

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


def validate_for_chart(values_text: str, source: str) -> FlotillaSpec:
    """The spec's own validation (field paths, cross-field rules), ${VAR} references left as they are."""
    return load_spec_text(values_text, source, env=_KeepUnsetReferences(os.environ))


@dataclass(frozen=True)
class Manifest:
    kind: str
    name: str
    text: str  # the document as helm wrote it, with its "# Source:" line

    @property
    def file_name(self) -> str:
        return _UNSAFE_FILE_CHARS.sub("-", f"{self.kind}-{self.name}".lower()) + ".yaml"


def split_manifests(rendered: str) -> list[Manifest]:
    manifests = []
    for chunk in _DOCUMENT_SEPARATOR.split(rendered):
        document = yaml.safe_load(chunk)
        if not document:
            continue
        metadata = document.get("metadata") or {}
        manifests.append(Manifest(str(document.get("kind", "unknown")), str(metadata.get("name", "unnamed")), chunk.strip() + "\n"))
    return manifests


def helm_template(
    values_text: str,
    *,
    release: str = "flotilla",
    namespace: str = "default",
    chart: Path | None = None,
    extra_args: list[str] | None = None,
    include_tests: bool = False,
) -> str:
    """Rendered manifests of the chart with `values_text` as the values file (read from stdin).

    The `helm test` Pod is left out unless asked: it is a hook for `helm test`, not a manifest to apply.
    """
    args = ["template", release, str(chart or chart_dir()), "--namespace", namespace, "--values", "-"]
    if not include_tests:
        args.append("--skip-tests")
    return run_helm(args + list(extra_args or []), input_text=values_text)


def render_to_dir(manifests: list[Manifest], out_dir: Path, clean: bool) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = sorted(out_dir.glob("*.yaml"))
    if existing and not clean:
        raise FileExistsError(
            f"{out_dir} already holds {len(existing)} .yaml file(s); pass --clean to replace them"
        )
    for stale in existing:
        stale.unlink()
    written = []
    seen: dict[str, int] = {}
    for manifest in manifests:
        name = manifest.file_name
        if name in seen:  # the same kind and name twice would overwrite: keep both
            seen[name] += 1
            name = name.removesuffix(".yaml") + f"-{seen[name]}.yaml"
        else:
            seen[name] = 0
        path = out_dir / name
        path.write_text(manifest.text)
        written.append(path)
    return written
