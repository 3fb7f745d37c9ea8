"""The gateway section: port, token database, tokens, scheduling and limits."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from flotilla.spec.base import SpecModel
from flotilla.spec.deploy import GatewayDeploy
from flotilla.spec.scheduling import RoutingPolicy, SchedulingSpec

_TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TokenSpec(SpecModel):
    name: str = Field(..., description="Who the token belongs to; usage is reported by this name.")
    token: str = Field(..., min_length=8, description="The bearer secret (use ${ENV}); stored hashed.")
    priority: int = Field(1, ge=0, le=1000, description="Higher is served first.")
    threshold: int = Field(10, ge=0, description="How many of this token's requests may wait in a model's queue.")

    @field_validator("name")
    @classmethod
    def _name_shape(cls, name: str) -> str:
        if not _TOKEN_NAME.match(name):
            raise ValueError(f"token name {name!r} must be 1-64 of letters, digits, '_', '.', '-'")
        return name


class DispatcherSpec(SpecModel):
    """Where the per-model queues live: in this process, or RabbitMQ shared by many gateways."""

    kind: Literal["local", "rabbitmq"] = Field(
        "local", description="local: one gateway process; rabbitmq: any number of gateways share queues and slots."
    )
    url: str | None = Field(None, description="amqp:// or amqps:// URL when kind is rabbitmq (use ${ENV} for the password).")
    prefix: str = Field(
        "flotilla", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Names of this installation's queues and exchange start with it (several installations may share a broker).",
    )
    queue_type: Literal["classic", "quorum"] = Field(
        "classic",
        description="quorum: each model's queue is replicated over a RabbitMQ cluster's nodes and survives losing "
        "one (every message is written to a majority's disks: slower); classic: on one node.",
    )

    @model_validator(mode="after")
    def _rabbitmq_needs_url(self) -> "DispatcherSpec":
        if self.kind == "rabbitmq":
            if not self.url:
                raise ValueError("dispatcher kind 'rabbitmq' needs `url` (amqp://user:pass@host:5672/vhost)")
            if not self.url.startswith(("amqp://", "amqps://")):
                raise ValueError("dispatcher url must start with amqp:// or amqps://")
        return self


class GatewaySpec(GatewayDeploy):
    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0 in containers).")
    port: int = Field(8000, ge=1, le=65535)
    database: str = Field(
        "sqlite:///./flotilla.db",
        description="Token and usage store: sqlite:///path, postgresql+asyncpg://..., mysql+aiomysql://...",
    )
    tokens: list[TokenSpec] = Field(default_factory=list, description="Bootstrapped into the store at start.")
    routing: RoutingPolicy = Field(
        "least-loaded",
        description="How a replica is chosen: least-loaded, round-robin, or prefix-aware (the replica that served "
        "the longest prefix of this prompt recently, unless that would unbalance the load).",
    )
    scheduling: SchedulingSpec = Field(
        default_factory=SchedulingSpec, description="Order of waiting requests (models may override it)."
    )
    dispatcher: DispatcherSpec = Field(default_factory=DispatcherSpec)
    max_queue_wait_s: float | None = Field(
        None, gt=0, description="A request waiting longer ends with 503 (None: wait as long as it takes)."
    )
    unavailable_wait_s: float = Field(
        30.0, gt=0, description="How long requests wait for a model none of whose replicas is healthy, then 503."
    )
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Larger request bodies get 413.")
    upstream_timeout_s: float = Field(600.0, gt=0, description="Longest a single upstream response may take.")
    connect_timeout_s: float = Field(3.0, gt=0)
    health_interval_s: float = Field(2.0, gt=0, description="How often replicas' /health and /metrics are read.")
    auth_refresh_s: float = Field(2.0, gt=0, description="Revocations and new tokens take effect within this.")
    usage_flush_s: float = Field(1.0, gt=0, description="Usage records are written in batches this often.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("database")
    @classmethod
    def _database_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite", "postgresql", "mysql", "mariadb")):
            raise ValueError(f"database URL {url.split(':', 1)[0]!r}: use sqlite:///, postgresql+asyncpg:// or mysql+aiomysql://")
        return url

    @model_validator(mode="after")
    def _tokens_unique(self) -> "GatewaySpec":
        names = [t.name for t in self.tokens]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"token names must be unique; repeated: {', '.join(dupes)}")
        secrets = [t.token for t in self.tokens]
        if len(set(secrets)) != len(secrets):
            raise ValueError("two tokens share the same secret value")
        return self
