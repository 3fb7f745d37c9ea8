"""Load a spec from YAML: ${ENV} substitution, validation, errors that name the field path."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flotilla.spec.root import FlotillaSpec

# ${VAR}, ${VAR:-default}; $${VAR} escapes to a literal ${VAR}.
_ENV_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SpecError(ValueError):
    """A spec that cannot be used; `problems` lists 'path: message' lines."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid spec\n" + "\n".join(f"  - {p}" for p in problems))


def _path_text(parts: tuple[Any, ...] | list[Any]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def substitute_env(node: Any, env: Mapping[str, str], path: tuple[Any, ...] = ()) -> Any:
    """Replace ${VAR} in every string of a parsed YAML tree; every missing variable is reported."""
    missing: list[str] = []
    result = _substitute(node, env, path, missing)
    if missing:
        raise SpecError("spec", missing)
    return result


def _substitute(node: Any, env: Mapping[str, str], path: tuple[Any, ...], missing: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, env, path + (k,), missing) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, path + (i,), missing) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def replace(match: re.Match[str]) -> str:
        escaped, name, default = match.groups()
        if escaped:
            return match.group(0)[1:]
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(f"{_path_text(path)}: environment variable {name} is not set")
        return ""

    return _ENV_REF.sub(replace, node)


def format_validation_error(error: ValidationError, data: Any) -> list[str]:
    problems = []
    for item in error.errors():
        loc = [p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        path = _path_text(loc)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling; keys are camelCase)"
        elif item["type"] != "missing" and "input" in item and not isinstance(item["input"], (dict, list)):
            if "secret" not in path.lower() and not path.endswith("token"):
                message += f" (got {item['input']!r})"
        problems.append(f"{path}: {message}")
    return problems


def parse_spec(data: Any, source: str = "spec", env: Mapping[str, str] | None = None) -> FlotillaSpec:
    if not isinstance(data, dict):
        raise SpecError(source, ["(top level): the spec must be a YAML mapping with `models:` and `gateway:`"])
    try:
        data = substitute_env(data, os.environ if env is None else env)
    except SpecError as exc:
        raise SpecError(source, exc.problems) from None
    try:
        return FlotillaSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, format_validation_error(exc, data)) from None


def load_spec_text(text: str, source: str = "spec", env: Mapping[str, str] | None = None) -> FlotillaSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(source, [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    return parse_spec(data, source, env)


def load_spec(path: str | Path, env: Mapping[str, str] | None = None) -> FlotillaSpec:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    return load_spec_text(text, str(path), env)
