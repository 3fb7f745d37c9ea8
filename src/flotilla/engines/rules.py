"""Engine arguments and environment written once, as rules, and read two ways.

Each engine kind lists the arguments of its server as rules (`Lit`, `Opt`, `Switch`, ...). Python
evaluates them to build the command line (`flotilla up`, tests), and `python -m flotilla.chart.schema`
turns the same rules into the chart's Go template (templates/_engine_args.tpl), so the chart and
the spec never disagree. A rule reads the model as the spec dumps it (camelCase keys, every default
filled in), which is what the chart's templates see after merging files/defaults.yaml.

Rules that cannot be said declaratively (`Custom`) carry both forms; tests/chart renders the chart
and compares its arguments with the Python ones for those too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flotilla.engines.flags import number_flag

Target = Literal["chart", "local"]


@dataclass(frozen=True)
class ArgContext:
    """What a rule may read besides the model: where the server listens, and for whom."""

    model: Mapping[str, Any]  # ModelSpec.model_dump(by_alias=True, mode="json")
    port: int
    host: str = "0.0.0.0"
    target: Target = "chart"
    role: str | None = None  # "prefill" | "decode" for a disaggregated model, else None

    @property
    def served_name(self) -> str:
        return self.model.get("servedModelName") or self.model["name"]


def get_path(model: Mapping[str, Any], path: str) -> Any:
    """`vllm.revision` -> model["vllm"]["revision"]; None when any part is missing."""
    node: Any = model
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def go_path(path: str) -> str:
    return "$m." + path


def go_str(text: str) -> str:
    """A Go string literal (JSON's escapes are Go's for the characters we use)."""
    return json.dumps(text)


def _go_append(tokens_expr: str) -> str:
    return "{{- $args = concat $args (list " + tokens_expr + ") -}}"


class Rule:
    def python(self, ctx: ArgContext) -> list[str]:
        raise NotImplementedError

    def go(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Lit(Rule):
    """Fixed tokens."""

    tokens: tuple[str, ...]

    def __init__(self, *tokens: str) -> None:
        object.__setattr__(self, "tokens", tokens)

    def python(self, ctx: ArgContext) -> list[str]:
        return list(self.tokens)

    def go(self) -> str:
        return _go_append(" ".join(go_str(t) for t in self.tokens))


@dataclass(frozen=True)
class Host(Rule):
    flag: str = "--host"

    def python(self, ctx: ArgContext) -> list[str]:
        return [self.flag, ctx.host]

    def go(self) -> str:
        return _go_append(f'{go_str(self.flag)} "0.0.0.0"')


@dataclass(frozen=True)
class Port(Rule):
    flag: str = "--port"

    def python(self, ctx: ArgContext) -> list[str]:
        return [self.flag, str(ctx.port)]

    def go(self) -> str:
        return _go_append(f"{go_str(self.flag)} (toString $port)")


@dataclass(frozen=True)
class Served(Rule):
    """The name the engine serves the model under (servedModelName, else name)."""

    flag: str

    def python(self, ctx: ArgContext) -> list[str]:
        return [self.flag, ctx.served_name]

    def go(self) -> str:
        return _go_append(f"{go_str(self.flag)} $served")


@dataclass(frozen=True)
class Positional(Rule):
    path: str

    def python(self, ctx: ArgContext) -> list[str]:
        return [str(get_path(ctx.model, self.path))]

    def go(self) -> str:
        return _go_append(go_path(self.path))


@dataclass(frozen=True)
class Opt(Rule):
    """`flag value` when the value is set: non-empty for text, not null for numbers."""

    flag: str
    path: str
    number: bool = False

    def python(self, ctx: ArgContext) -> list[str]:
        value = get_path(ctx.model, self.path)
        if self.number:
            return [] if value is None else [self.flag, number_flag(value)]
        return [self.flag, str(value)] if value else []

    def go(self) -> str:
        ref = go_path(self.path)
        if self.number:
            return (
                f'{{{{- if not (kindIs "invalid" {ref}) }}}}'
                + _go_append(f'{go_str(self.flag)} (include "flotilla.num" {ref})')
                + "{{- end -}}"
            )
        return f"{{{{- if {ref} }}}}" + _go_append(f"{go_str(self.flag)} {ref}") + "{{- end -}}"


@dataclass(frozen=True)
class Switch(Rule):
    """A flag with no value, present when the boolean is true."""

    flag: str
    path: str

    def python(self, ctx: ArgContext) -> list[str]:
        return [self.flag] if get_path(ctx.model, self.path) else []

    def go(self) -> str:
        return f"{{{{- if {go_path(self.path)} }}}}" + _go_append(go_str(self.flag)) + "{{- end -}}"


@dataclass(frozen=True)
class Extra(Rule):
    """A list of arguments appended as given (extraArgs)."""

    path: str

    def python(self, ctx: ArgContext) -> list[str]:
        return [str(a) for a in get_path(ctx.model, self.path) or []]

    def go(self) -> str:
        return "{{- $args = concat $args (" + go_path(self.path) + " | default list) -}}"


@dataclass(frozen=True)
class Custom(Rule):
    """Arguments too particular for the rules above: a Python function and the Go template that
    does the same (tests/chart checks they agree on the cases it renders)."""

    python_fn: Callable[[ArgContext], list[str]]
    go_template: str
    name: str = ""

    def python(self, ctx: ArgContext) -> list[str]:
        return self.python_fn(ctx)

    def go(self) -> str:
        return self.go_template.strip()


@dataclass(frozen=True)
class EnvOpt:
    """An environment variable from a model value (set: non-empty text / non-null number)."""

    name: str
    path: str
    number: bool = False

    def python(self, ctx: ArgContext) -> dict[str, str]:
        value = get_path(ctx.model, self.path)
        if self.number:
            return {} if value is None else {self.name: number_flag(value)}
        return {self.name: str(value)} if value else {}

    def go(self) -> str:
        ref = go_path(self.path)
        item = f'(dict "name" {go_str(self.name)} "value" ' + (
            f'(include "flotilla.num" {ref}))' if self.number else f"{ref})"
        )
        test = f'not (kindIs "invalid" {ref})' if self.number else ref
        return f"{{{{- if {test} }}}}{{{{- $env = append $env {item} -}}}}{{{{- end -}}}}"


@dataclass(frozen=True)
class EnvSwitch:
    """An environment variable set to "true" when the boolean is true (absent otherwise)."""

    name: str
    path: str

    def python(self, ctx: ArgContext) -> dict[str, str]:
        return {self.name: "true"} if get_path(ctx.model, self.path) else {}

    def go(self) -> str:
        return (
            f"{{{{- if {go_path(self.path)} }}}}"
            f'{{{{- $env = append $env (dict "name" {go_str(self.name)} "value" "true") -}}}}{{{{- end -}}}}'
        )


@dataclass(frozen=True)
class EnvServed:
    """The name the engine serves the model under, as a variable."""

    name: str

    def python(self, ctx: ArgContext) -> dict[str, str]:
        return {self.name: ctx.served_name}

    def go(self) -> str:
        return f'{{{{- $env = append $env (dict "name" {go_str(self.name)} "value" $served) -}}}}'


@dataclass(frozen=True)
class EnvHost:
    name: str

    def python(self, ctx: ArgContext) -> dict[str, str]:
        return {self.name: ctx.host}

    def go(self) -> str:
        return f'{{{{- $env = append $env (dict "name" {go_str(self.name)} "value" "0.0.0.0") -}}}}'


@dataclass(frozen=True)
class EnvPort:
    name: str

    def python(self, ctx: ArgContext) -> dict[str, str]:
        return {self.name: str(ctx.port)}

    def go(self) -> str:
        return f'{{{{- $env = append $env (dict "name" {go_str(self.name)} "value" (toString $port)) -}}}}'


@dataclass(frozen=True)
class Rules:
    """An engine's arguments and environment."""

    args: tuple[Rule, ...] = ()
    env: tuple[Any, ...] = field(default=())

    def python_args(self, ctx: ArgContext) -> list[str]:
        out: list[str] = []
        for rule in self.args:
            out += rule.python(ctx)
        return out

    def python_env(self, ctx: ArgContext) -> dict[str, str]:
        out: dict[str, str] = {}
        for rule in self.env:
            out.update(rule.python(ctx))
        return out


_PREAMBLE = (
    "{{- $m := .model -}}{{- $port := .port -}}{{- $role := .role | default \"\" -}}"
    "{{- $served := $m.servedModelName | default $m.name -}}"
)


def go_define(name: str, body_rules: Sequence[Any], collect: str) -> str:
    """One `{{ define }}` block evaluating rules into `$args` (or `$env`) and printing it as JSON."""
    lines = [f'{{{{- define "{name}" -}}}}', _PREAMBLE, f"{{{{- ${collect} := list -}}}}"]
    lines += [rule.go() for rule in body_rules]
    # sprig's concat of empty lists is a nil slice, which toJson writes as null: say [] instead.
    lines += [f"{{{{- if ${collect} }}}}{{{{ toJson ${collect} }}}}{{{{ else }}}}[]{{{{ end -}}}}", "{{- end -}}"]
    return "\n".join(lines)
