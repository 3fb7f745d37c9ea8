"""`flotilla status`: a running gateway's models, replicas, queues and recent traffic.

Everything comes from the gateway's own /metrics (Prometheus text) and /health/ready, which need no
token: point it at a local gateway or at one port-forwarded from a cluster.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.table import Table
from rich.text import Text


class GatewayUnreachable(RuntimeError):
    """The URL answered nothing usable; the message says what to check."""


@dataclass
class ReplicaStatus:
    replica: str
    healthy: bool
    in_flight: int
    free_slots: int


@dataclass
class ModelStatus:
    name: str
    replicas: list[ReplicaStatus] = field(default_factory=list)
    queued: dict[str, int] = field(default_factory=dict)  # priority -> waiting ("all": total)
    oldest_wait_s: dict[str, float] = field(default_factory=dict)  # priority -> seconds ("all": any)
    recent_requests: dict[str, int] = field(default_factory=dict)  # ok | client_error | server_error
    recent_tokens: dict[str, int] = field(default_factory=dict)  # prompt | completion

    @property
    def healthy(self) -> int:
        return sum(r.healthy for r in self.replicas)

    @property
    def errors(self) -> int:
        return self.recent_requests.get("client_error", 0) + self.recent_requests.get("server_error", 0)


@dataclass
class GatewayStatus:
    url: str
    ready: bool
    tokens: int | None
    window_s: float | None  # span of the recent_* figures; None: the gateway predates them
    models: dict[str, ModelStatus]

    def as_dict(self) -> dict:
        return asdict(self)


def _get(root: str, path: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(root + path, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:  # /health/ready answers 503 while not ready: still a reading
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GatewayUnreachable(
            f"cannot reach a Flotilla gateway at {root}: {reason}. Is it running? From a cluster: "
            "kubectl port-forward svc/RELEASE-flotilla 8000:80, then flotilla status http://127.0.0.1:8000"
        ) from None


def read_status(url: str, timeout: float = 5.0) -> GatewayStatus:
    root = url.rstrip("/").removesuffix("/v1")
    status, body = _get(root, "/metrics", timeout)
    if status != 200 or b"flotilla_" not in body:
        raise GatewayUnreachable(f"{root}/metrics answered {status} without Flotilla metrics: is this a Flotilla gateway?")
    ready_status, ready_body = _get(root, "/health/ready", timeout)
    try:
        ready = json.loads(ready_body)
    except ValueError:
        ready = {}
    result = GatewayStatus(root, ready_status == 200, ready.get("tokens"), None, {})
    _apply_metrics(result, body.decode())
    return result


def _apply_metrics(result: GatewayStatus, text: str) -> None:
    models = result.models
    replicas: dict[tuple[str, str], ReplicaStatus] = {}

    def model(name: str) -> ModelStatus:
        return models.setdefault(name, ModelStatus(name))

    def replica(labels: dict) -> ReplicaStatus:
        key = (labels["model"], labels["replica"])
        if key not in replicas:
            replicas[key] = ReplicaStatus(labels["replica"], False, 0, 0)
            model(labels["model"]).replicas.append(replicas[key])
        return replicas[key]

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels, value = sample.labels, sample.value
            name = sample.name
            if name == "flotilla_replica_healthy":
                replica(labels).healthy = value == 1
            elif name == "flotilla_replica_in_flight":
                replica(labels).in_flight = int(value)
            elif name == "flotilla_replica_free_slots":
                replica(labels).free_slots = int(value)
            elif name == "flotilla_queue_depth":
                model(labels["model"]).queued[labels["priority"]] = int(value)
            elif name == "flotilla_queue_oldest_wait_seconds":
                model(labels["model"]).oldest_wait_s[labels["priority"]] = value
            elif name == "flotilla_recent_requests":
                model(labels["model"]).recent_requests[labels["outcome"]] = int(value)
            elif name == "flotilla_recent_tokens":
                model(labels["model"]).recent_tokens[labels["direction"]] = int(value)
            elif name == "flotilla_recent_window_seconds":
                result.window_s = value
    # The spec's order, which the replica gauges keep (queue gauges are sorted by name).
    order = [model for model, _ in replicas]
    result.models = {name: models[name] for name in sorted(models, key=lambda n: order.index(n) if n in order else len(order))}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _window(seconds: float | None) -> str:
    if seconds is None:
        return "recent"
    return f"last {seconds / 60:.0f} min" if seconds >= 60 else f"last {seconds:.0f} s"


def render(status: GatewayStatus) -> Group:
    state = Text("ready", style="green") if status.ready else Text("not ready", style="red")
    head = Text.assemble("Gateway ", (status.url, "bold"), " · ", state,
                         f" · {status.tokens} token(s)" if status.tokens is not None else "")
    window = _window(status.window_s)

    models = Table(title=f"Models ({window})", title_justify="left", expand=False)
    for column in ("model", "healthy", "in flight", "free slots", "queued", "oldest wait",
                   "requests", "errors", "prompt tokens", "completion tokens"):
        models.add_column(column, justify="left" if column == "model" else "right")
    for m in status.models.values():
        replicas_text = Text(f"{m.healthy}/{len(m.replicas)}", style="green" if m.healthy else "red")
        models.add_row(
            m.name, replicas_text, str(sum(r.in_flight for r in m.replicas)),
            str(sum(r.free_slots for r in m.replicas if r.healthy)), str(m.queued.get("all", 0)),
            _duration(m.oldest_wait_s.get("all")) if m.queued.get("all") else "–",
            str(sum(m.recent_requests.values())), Text(str(m.errors), style="red" if m.errors else ""),
            str(m.recent_tokens.get("prompt", 0)), str(m.recent_tokens.get("completion", 0)),
        )

    replicas = Table(title="Replicas", title_justify="left")
    for column in ("model", "replica", "health", "in flight", "free slots"):
        replicas.add_column(column, justify="right" if column in ("in flight", "free slots") else "left")
    for m in status.models.values():
        for r in m.replicas:
            replicas.add_row(m.name, r.replica, Text("healthy", "green") if r.healthy else Text("down", "red"),
                             str(r.in_flight), str(r.free_slots))

    queues = Table(title="Queues by priority (higher first)", title_justify="left")
    for column in ("model", "priority", "waiting", "oldest wait"):
        queues.add_column(column, justify="left" if column == "model" else "right")
    for m in status.models.values():
        waiting = sorted(((p, n) for p, n in m.queued.items() if p != "all" and n), key=lambda pn: -int(pn[0]))
        for priority, count in waiting:
            queues.add_row(m.name, priority, str(count), _duration(m.oldest_wait_s.get(priority)))
    parts = [head, models, replicas]
    parts.append(queues if queues.row_count else Text("No request is waiting."))
    return Group(*parts)
