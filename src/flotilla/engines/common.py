"""Argument rules several engine kinds share: the engine's config file (extraConfig) and a
disaggregated role's own arguments."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from flotilla.engines.rules import ArgContext

if TYPE_CHECKING:
    from flotilla.spec.models import ModelSpec


def _given(section: Any) -> bool:
    return isinstance(section, dict) and (section.get("inline") is not None or section.get("configMapRef") is not None)


def extra_config_of(model: dict, role: str | None) -> dict | None:
    """The config file in force: the role's own, else the model's."""
    if role:
        own = ((model.get("roles") or {}).get(role) or {}).get("extraConfig")
        if _given(own):
            return own
    config = model.get("extraConfig")
    return config if _given(config) else None


def local_config_path(model_name: str, role: str | None) -> Path:
    suffix = f"-{role}" if role else ""
    return Path(tempfile.gettempdir()) / "flotilla-engine-config" / f"{model_name}{suffix}.yaml"


def config_file_args(ctx: ArgContext, flag: str) -> list[str]:
    config = extra_config_of(ctx.model, ctx.role)
    if config is None:
        return []
    if ctx.target == "local":
        return [flag, str(local_config_path(ctx.model["name"], ctx.role))]
    return [flag, config["path"]]


# In the chart every optional section is filled with its defaults, so "given" means: inline set,
# or a ConfigMap named.
CONFIG_FILE_GO = """
{{- $cfg := $m.extraConfig -}}
{{- if $role }}{{ $own := (index $m.roles $role).extraConfig }}{{ if and $own (or $own.inline (dig "configMapRef" "name" "" $own)) }}{{ $cfg = $own }}{{ end }}{{ end -}}
{{- if and $cfg (or $cfg.inline (dig "configMapRef" "name" "" $cfg)) }}{{ $args = concat $args (list "FLAG" $cfg.path) }}{{ end -}}
"""


def local_config_files(model: ModelSpec, role: str | None = None) -> Path | None:
    """Write an inline extraConfig where the local command points; a ConfigMap exists only in a cluster."""
    config = extra_config_of(model.model_dump(by_alias=True, mode="json"), role)
    if config is None:
        return None
    if config.get("inline") is None:
        raise ValueError(
            f"model {model.name!r}: extraConfig.configMapRef names a Kubernetes ConfigMap; "
            "on this machine give the config inline (extraConfig.inline)"
        )
    path = local_config_path(model.name, role)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config["inline"], sort_keys=False))
    return path


def role_extra_args(ctx: ArgContext) -> list[str]:
    if not ctx.role:
        return []
    return [str(a) for a in ((ctx.model.get("roles") or {}).get(ctx.role) or {}).get("extraArgs") or []]


ROLE_EXTRA_ARGS_GO = '{{- if $role }}{{ $args = concat $args ((index $m.roles $role).extraArgs | default list) }}{{ end -}}'


def tensor_size(model: dict, option: str) -> int:
    """parallelism.tensor when given, else the engine's own tensor-parallel option."""
    given = (model.get("parallelism") or {}).get("tensor")
    return int(given if given is not None else model[model["engine"]][option])
