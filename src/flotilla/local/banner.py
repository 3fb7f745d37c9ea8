"""What `flotilla up` prints once the stack is ready: endpoint, models, tokens, copy-paste examples.

Token values are never printed: for each token we say where its value comes from (an environment
variable, or the spec file), and the examples read it from that variable.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flotilla.spec.root import FlotillaSpec

_WHOLE_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?\}$")


@dataclass(frozen=True)
class TokenSource:
    name: str
    priority: int
    threshold: int
    env_var: str | None  # the variable holding the value, if the spec reads one
    env_set: bool  # the variable is set (else the spec's default is in use)
    has_default: bool

    def describe(self, spec_path: Path, index: int) -> str:
        where = f"{spec_path}, gateway.tokens[{index}]"
        if self.env_var is None:
            return f"value written in {where}"
        if self.env_set:
            return f"value from ${self.env_var}"
        if self.has_default:
            return f"${self.env_var} is not set: using the default in {where} (for local use only)"
        return f"value from ${self.env_var}"


def token_sources(spec: FlotillaSpec, spec_path: Path, env: dict[str, str] | None = None) -> list[TokenSource]:
    """Read the raw YAML again: after substitution the spec only knows values, not where they came from."""
    env = dict(os.environ) if env is None else env
    raw: Any = yaml.safe_load(spec_path.read_text())
    raw_tokens = ((raw or {}).get("gateway") or {}).get("tokens") or []
    sources = []
    for index, token in enumerate(spec.gateway.tokens):
        raw_value = raw_tokens[index].get("token") if index < len(raw_tokens) else None
        match = _WHOLE_ENV_REF.match(raw_value) if isinstance(raw_value, str) else None
        env_var = match.group(1) if match else None
        sources.append(
            TokenSource(
                name=token.name,
                priority=token.priority,
                threshold=token.threshold,
                env_var=env_var,
                env_set=env_var is not None and env_var in env,
                has_default=bool(match and match.group(2) is not None),
            )
        )
    return sources


def _token_expression(source: TokenSource | None) -> str:
    return f"${source.env_var}" if source and source.env_var else "$FLOTILLA_TOKEN"


def ready_message(
    spec: FlotillaSpec, spec_path: Path, endpoints: list[str], run_dir: Path, sources: list[TokenSource]
) -> str:
    """Plain text (no markup) so it can be copied as is."""
    endpoint = endpoints[0]
    # A spec with pipelines is run for them: the examples call the first one.
    example_model = spec.pipelines[0].name if spec.pipelines else spec.models[0].name
    # The highest-priority token is the one a person trying things out wants.
    best = max(sources, key=lambda s: s.priority) if sources else None
    token = _token_expression(best)
    lines = [
        f"Flotilla is up: OpenAI-compatible endpoint {endpoint}",
        *(
            [f"  and {len(endpoints) - 1} more gateway(s) sharing its queues: {', '.join(endpoints[1:])}"]
            if len(endpoints) > 1 else []
        ),
        "",
        "Models:",
        *(f"  {m.name:<16} {m.engine} x{m.replica_count}" for m in spec.models),
        *pipeline_lines(spec, spec_path),
        "",
        "Tokens (send one as 'Authorization: Bearer ...'; values are never printed):",
    ]
    if not sources:
        lines.append(f"  none: add gateway.tokens to {spec_path}")
    for index, source in enumerate(sources):
        lines.append(
            f"  {source.name:<16} priority {source.priority}, threshold {source.threshold}: "
            f"{source.describe(spec_path, index)}"
        )
    if best and best.env_var and not best.env_set:
        lines += ["", f"Set the token in your shell first: export {best.env_var}=<the value in {spec_path}>"]
    lines += [
        "",
        "Try it with curl:",
        f"  curl -s {endpoint}/chat/completions \\",
        f'    -H "Authorization: Bearer {token}" -H "Content-Type: application/json" \\',
        f"    -d '{{\"model\": \"{example_model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'",
        "",
        "Or with Python (pip install openai):",
        "  import os",
        "  from openai import OpenAI",
        f'  client = OpenAI(base_url="{endpoint}", api_key=os.environ["{best.env_var if best and best.env_var else "FLOTILLA_TOKEN"}"])',
        f'  reply = client.chat.completions.create(model="{example_model}", messages=[{{"role": "user", "content": "Hello!"}}])',
        "  print(reply.choices[0].message.content)",
        "",
        f"Logs and state: {run_dir}/ (state.json, up.log, gateway.log, engine-<model>-<i>.log)",
        "Press Ctrl-C to stop everything.",
    ]
    return "\n".join(lines)


def pipeline_lines(spec: FlotillaSpec, spec_path: Path) -> list[str]:
    if not spec.pipelines:
        return []
    lines = ["", "Pipelines (called like models; answers carry `citations`):"]
    for p in spec.pipelines:
        lines.append(f"  {p.name:<16} {' | '.join(p.flow)}")
        if p.ingest.tokens:
            lines.append(f"  {'':<16} add documents: flotilla ingest {p.name} FILES... --spec {spec_path} --token-name {p.ingest.tokens[0]}")
    return lines
