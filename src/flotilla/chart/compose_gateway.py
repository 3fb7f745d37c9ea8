"""The spec the gateway container runs on a Docker host, and the variables its `.env` file must hold.

Secrets never go into a rendered file: a token, API key or database URL written in the spec as a
value becomes a ${FLOTILLA_...} reference, its variable listed in `.env.example` without the value;
references the spec already has stay as they are (the gateway fills them from `.env`). Stores go
where the containers keep them: SQLite files on the gateway's data volume, a pgvector store without
`url` on the compose file's own pgvector service.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

DATA_DIR = "/var/lib/flotilla"
VECTOR_DB_URL_ENV = "FLOTILLA_VECTOR_DB_URL"
_PASSWORD_IN_URL = re.compile(r"^[a-z0-9+]+://[^/@:]*:[^/@]+@")


@dataclass
class EnvVariable:
    name: str
    comment: str
    default: str | None = None  # the spec's ${NAME:-default}: optional in .env


@dataclass
class GatewayConfig:
    spec: dict[str, Any]
    variables: list[EnvVariable] = field(default_factory=list)
    needs_vector_db: bool = False
    warnings: list[str] = field(default_factory=list)


def env_name(text: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_")


def references(value: str) -> list[tuple[str, str | None]]:
    """(name, default or None) of each ${NAME} / ${NAME:-default} in a string."""
    out = []
    for match in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*)|:?\?[^}]*)?\}", value):
        out.append((match.group(1), match.group(2)))  # ${X:?message}: required, no default
    return out


class _Secrets:
    def __init__(self) -> None:
        self.variables: dict[str, EnvVariable] = {}

    def keep(self, value: str, variable: str, comment: str) -> str:
        """A secret as the gateway will read it: the spec's references, else a new reference."""
        found = references(value)
        if found:
            for name, default in found:
                self.variables.setdefault(name, EnvVariable(name, comment, default))
            return value
        self.variables.setdefault(variable, EnvVariable(variable, comment))
        return "${" + variable + "}"


def gateway_config(data: dict[str, Any], chart_only_model_keys: set[str], launched: set[str]) -> GatewayConfig:
    """`data`: the spec as written; `launched`: models the compose file runs (found by --endpoint)."""
    secrets = _Secrets()
    warnings: list[str] = []
    models = []
    for model in copy.deepcopy(data.get("models") or []):
        for key in chart_only_model_keys:
            model.pop(key, None)
        if model.get("name") in launched:
            model.pop("replicas", None)  # the gateway finds every replica by DNS
        if model.get("apiKey"):
            model["apiKey"] = secrets.keep(model["apiKey"], f"FLOTILLA_MODEL_{env_name(model['name'])}_API_KEY",
                                           f"API key sent to model {model['name']}'s external server")
        models.append(model)
    given = copy.deepcopy(data.get("gateway") or {})
    gateway = {k: v for k, v in given.items() if k in _gateway_process_keys()}
    gateway["host"] = "0.0.0.0"
    gateway["usageSpool"] = f"{DATA_DIR}/usage-spool.jsonl"  # the root filesystem is read-only
    gateway["tokens"] = [
        {**t, "token": secrets.keep(str(t["token"]), f"FLOTILLA_TOKEN_{env_name(t['name'])}", f"bearer token {t['name']!r}")}
        for t in given.get("tokens") or []
    ]
    database = str(given.get("database", "sqlite:///./flotilla.db"))
    if database.startswith("sqlite"):
        gateway["database"] = f"sqlite:///{DATA_DIR}/flotilla.db"
    elif _PASSWORD_IN_URL.match(database) and not references(database):
        gateway["database"] = secrets.keep("", "FLOTILLA_DATABASE_URL", "the gateway's token and usage database URL")
        warnings.append("gateway.database holds a password: the gateway reads it from FLOTILLA_DATABASE_URL in .env")
    dispatcher = given.get("dispatcher")
    if isinstance(dispatcher, dict) and dispatcher.get("url") and not references(str(dispatcher["url"])) \
            and _PASSWORD_IN_URL.match(str(dispatcher["url"])):
        gateway["dispatcher"] = {**dispatcher, "url": secrets.keep("", "FLOTILLA_RABBITMQ_URL", "the RabbitMQ URL")}
    spec: dict[str, Any] = {"models": models, "gateway": gateway}
    needs_vector_db = False
    pipelines = []
    for pipeline in copy.deepcopy(data.get("pipelines") or []):
        for name, node in pipeline.get("nodes", {}).items():
            if node.get("kind") == "retriever":
                store = node.setdefault("store", {"kind": "sqlite"})
                if store["kind"] == "sqlite":
                    store["path"] = f"{DATA_DIR}/vectors/{pipeline['name']}-{name}.db"
                elif not store.get("url"):
                    store["url"] = "${" + VECTOR_DB_URL_ENV + "}"
                    needs_vector_db = True
                elif _PASSWORD_IN_URL.match(store["url"]) and not references(store["url"]):
                    store["url"] = secrets.keep("", f"FLOTILLA_PGVECTOR_{env_name(pipeline['name'] + '_' + name)}_URL",
                                                f"pgvector URL of pipeline {pipeline['name']}, node {name}")
            if node.get("kind") == "http":
                for header, value in (node.get("headers") or {}).items():
                    for ref, default in references(str(value)):
                        secrets.variables.setdefault(ref, EnvVariable(ref, f"header {header} of node {name}", default))
        pipeline.get("ingest", {}).pop("sources", None)  # the compose file's ingest service reads them
        pipelines.append(pipeline)
    if pipelines:
        spec["pipelines"] = pipelines
    return GatewayConfig(spec, list(secrets.variables.values()), needs_vector_db, warnings)



def _gateway_process_keys() -> set[str]:
    """Keys of `gateway:` the gateway process reads (the rest is the chart's, or set here)."""
    from flotilla.spec.deploy import GatewayDeploy
    from flotilla.spec.gateway import GatewaySpec

    def aliases(cls):
        return {info.alias or name for name, info in cls.model_fields.items()}

    return aliases(GatewaySpec) - aliases(GatewayDeploy) - {"host", "tokens", "database", "usageSpool"}
