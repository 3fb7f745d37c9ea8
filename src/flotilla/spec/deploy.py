"""Kubernetes-only sections of the spec, read by the Helm chart and ignored by `flotilla up`.

Keys here mirror Helm conventions (image, resources, nodeSelector, tolerations, affinity) so the
spec doubles as the chart's values file. Defaults here are the chart's defaults: the chart's
values.yaml and its generated files/defaults.yaml are checked against them by tests/chart.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from flotilla.spec.base import SpecModel
from flotilla.spec.kube import (
    Affinity,
    EnvVar,
    IngressTLS,
    NetworkPolicyPeer,
    PodSecurityContext,
    ResourceRequirements,
    SecurityContext,
    Toleration,
)

# ingress-nginx buffers and caps bodies by default; streamed answers need neither. Its read/send
# timeouts are set by the chart from gateway.requestTimeoutS (the one timeout knob).
STREAMING_INGRESS_ANNOTATIONS: dict[str, str] = {
    "nginx.ingress.kubernetes.io/proxy-buffering": "off",
    "nginx.ingress.kubernetes.io/proxy-body-size": "16m",
}

# Engines' requests and limits come with their descriptors (flotilla.engines, ContainerDefaults).
# The chart's other containers, when their `resources` are not given.
DEFAULT_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    "gateway": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
    "download": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    "helper": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    "benchmark": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    "postgresql": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
}

# An integer or a percentage, as Deployments and PodDisruptionBudgets take them.
IntOrPercent = int | Annotated[str, Field(pattern=r"^[0-9]+%$")]
# A Gateway API duration (HTTPRoute timeouts).
GatewayDuration = Annotated[str, Field(pattern=r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")]


class ImageSpec(SpecModel):
    repository: str | None = Field(None, description="Default: the engine's official image.")
    tag: str | None = Field(None, description="Default: the engine's pinned tag.")
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


class GpuSpec(SpecModel):
    count: int | None = Field(
        None, ge=0,
        description="GPUs per pod; default: the tensor-parallel size (numShard for TGI) x pipeline stages / nodes.",
    )
    resource_name: str = Field("nvidia.com/gpu", description="Extended resource name of the accelerator.")
    runtime_class_name: str | None = Field(None, description="e.g. 'nvidia' (the GPU Operator's runtime class).")


class CacheSpec(SpecModel):
    """Where model weights are cached (HF_HOME), so a restart does not download again."""

    type: Literal["pvc", "hostPath", "emptyDir"] = "emptyDir"
    size: str = Field("50Gi", description="PVC size, or emptyDir sizeLimit.")
    storage_class: str | None = None
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"] = "ReadWriteOnce"
    existing_claim: str | None = Field(None, description="Use this PVC instead of making one.")
    host_path: str | None = Field(None, description="Node directory when type is hostPath.")
    mount_path: str = "/models"

    @model_validator(mode="after")
    def _host_path_given(self) -> "CacheSpec":
        if self.type == "hostPath" and not self.host_path:
            raise ValueError("cache type 'hostPath' needs `hostPath` (a directory on the node)")
        return self


class SecretStoreRef(SpecModel):
    name: str = Field(..., min_length=1, description="The SecretStore or ClusterSecretStore to read from.")
    kind: Literal["SecretStore", "ClusterSecretStore"] = "ClusterSecretStore"


class ExternalSecretSpec(SpecModel):
    """external-secrets.io/v1 ExternalSecret that materialises the Hugging Face token."""

    secret_store_ref: SecretStoreRef
    remote_key: str = Field(..., min_length=1, description="Key of the secret in the store (e.g. a Vault path).")
    property: str | None = Field(None, description="Field inside that secret (e.g. 'value').")
    refresh_interval: str = "1h"


class HfTokenSpec(SpecModel):
    """Hugging Face token: an existing Secret, a Secret the chart makes, or an ExternalSecret."""

    value: str | None = Field(None, description="The chart makes a Secret holding it (use for tests only).")
    existing_secret: str | None = Field(None, description="An existing Secret holding the token.")
    secret_key: str = Field("HF_TOKEN", description="Key of the token in the Secret.")
    external_secret: ExternalSecretSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "HfTokenSpec":
        sources = [s for s in ("value", "existing_secret", "external_secret") if getattr(self, s) is not None]
        if len(sources) != 1:
            raise ValueError("hfToken needs exactly one of value, existingSecret, externalSecret")
        return self


class DownloadSpec(SpecModel):
    """An init container that fills the model cache before the engine starts (vllm, sglang, tgi).

    It downloads the engine section's `model` at its `revision` with the model's hfToken, so a
    gated model, a wrong revision or a full disk fails there, named, instead of as a crash-looping
    engine; the engine then starts from a warm cache.
    """

    enabled: bool = False
    allow_patterns: list[str] = Field(
        default_factory=list, description="Only files matching these globs (e.g. ['*.safetensors', '*.json']); empty: all."
    )
    offline_engine: bool = Field(
        True, description="Run the engine with HF_HUB_OFFLINE=1: it loads what was downloaded and never fetches again."
    )
    resources: ResourceRequirements | None = Field(None, description="Default: the chart's download resources.")


class ProbesSpec(SpecModel):
    """Sized for model loading: liveness never kills a slow loader (the startup probe guards it)."""

    startup_timeout_seconds: int = Field(1800, ge=10, description="Window a replica has to load its model.")
    period_seconds: int = Field(10, ge=1)
    timeout_seconds: int = Field(5, ge=1, description="One probe's HTTP timeout.")
    readiness_failure_threshold: int = Field(3, ge=1)
    liveness_failure_threshold: int = Field(6, ge=1)


class RabbitmqQueueTrigger(SpecModel):
    """Count the waiting requests in RabbitMQ itself (with the RabbitMQ dispatcher).

    The dispatcher keeps one queue per model, `<gateway.dispatcher.prefix>.sched.<model>` (in the
    chart the prefix defaults to the release's name), holding the waiting
    tickets unacknowledged at the active scheduler. KEDA's rabbitmq scaler counts unacknowledged
    messages only over the management (HTTP) API, so the chart uses that protocol.
    """

    enabled: bool = False
    management_url: str | None = Field(
        None,
        description="http(s)://host:15672/vhost of the management API; default: the internal RabbitmqCluster's "
        "(rabbitmq.type internal).",
    )
    credentials_secret: str | None = Field(
        None, description="Secret with `username` and `password` keys; default: the internal cluster's default user."
    )


class AutoscalingSpec(SpecModel):
    """KEDA ScaledObject on the model's demand: requests queued plus in flight, per replica."""

    enabled: bool = False
    min_replicas: int = Field(1, ge=0, description="0 lets KEDA scale the model away when nobody waits.")
    max_replicas: int = Field(4, ge=1)
    target_per_replica: int | None = Field(
        None, ge=1, description="Requests (queued + in flight) one replica should carry; default: maxConcurrency."
    )
    prometheus_address: str | None = Field(
        "http://prometheus-operated.monitoring.svc:9090",
        description="Prometheus that scrapes the gateway (monitoring.serviceMonitor or podMonitor).",
    )
    query: str | None = Field(
        None, description="PromQL override; default: the gateway's queued + in-flight requests of this model."
    )
    rabbitmq: RabbitmqQueueTrigger = Field(default_factory=RabbitmqQueueTrigger)
    polling_interval_seconds: int = Field(15, ge=1)
    cooldown_seconds: int = Field(
        900, ge=0, description="Idle time before scaling to zero (KEDA cooldownPeriod); a reload costs minutes."
    )
    scale_down_stabilization_seconds: int = Field(
        900, ge=0, description="HPA window before removing replicas: at least a model load, so demand that "
        "returns within it finds the replica still loaded.",
    )
    scale_up_stabilization_seconds: int = Field(0, ge=0, description="HPA window before adding replicas.")
    fallback_replicas: int | None = Field(
        None, ge=0, description="Replicas while the metrics source fails; default: max(minReplicas, 1), and "
        "never fewer than are running.",
    )
    failure_threshold: int = Field(3, ge=1, description="Failed metric reads before the fallback applies.")

    @model_validator(mode="after")
    def _bounds(self) -> "AutoscalingSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) is above maxReplicas ({self.max_replicas})")
        if self.enabled and not self.prometheus_address and not self.query:
            raise ValueError(
                "autoscaling needs prometheusAddress: KEDA reads the in-flight requests from the gateway's metrics"
            )
        return self


class StrategySpec(SpecModel):
    """How a Deployment replaces its pods. GPU pods cannot surge where no GPU is free."""

    type: Literal["Recreate", "RollingUpdate"] = "RollingUpdate"
    max_surge: IntOrPercent = Field(0, description="Extra pods during a rollout (each needs its GPUs free).")
    max_unavailable: IntOrPercent = Field(1, description="Pods that may be down during a rollout.")

    @model_validator(mode="after")
    def _progress_possible(self) -> "StrategySpec":
        if self.type == "RollingUpdate" and self.max_surge in (0, "0%") and self.max_unavailable in (0, "0%"):
            raise ValueError("strategy: maxSurge and maxUnavailable cannot both be 0 (the rollout could never start)")
        return self


class DisruptionBudgetSpec(SpecModel):
    """A PodDisruptionBudget: node drains evict at most this many pods of the model at once."""

    enabled: bool = True
    max_unavailable: IntOrPercent = 1


class TopologySpreadSpec(SpecModel):
    """Spread replicas over nodes (or zones) so one node's loss takes one replica."""

    enabled: bool | None = Field(
        None, description="Default: on, except for a ReadWriteOnce cache claim (its pods must share a node)."
    )
    topology_key: str = "kubernetes.io/hostname"
    max_skew: int = Field(1, ge=1)
    when_unsatisfiable: Literal["ScheduleAnyway", "DoNotSchedule"] = Field(
        "ScheduleAnyway", description="ScheduleAnyway: a preference; never leaves a GPU pod pending."
    )


class ModelDeploy(SpecModel):
    """Per-model Kubernetes settings."""

    image: ImageSpec = Field(default_factory=ImageSpec)
    gpu: GpuSpec = Field(default_factory=GpuSpec)
    resources: ResourceRequirements | None = Field(
        None, description="Container requests/limits; default: the engine's (chart README), shmSize added to the memory limit."
    )
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    affinity: Affinity | None = None
    shm_size: str | None = Field("8Gi", description="Memory-backed /dev/shm size (tensor parallel needs it); null: none.")
    cache: CacheSpec = Field(default_factory=CacheSpec)
    hf_token: HfTokenSpec | None = None
    download: DownloadSpec = Field(default_factory=DownloadSpec)
    probes: ProbesSpec = Field(default_factory=ProbesSpec)
    env: list[EnvVar] = Field(default_factory=list, description="Extra container env entries.")
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    pod_labels: dict[str, str] = Field(default_factory=dict)
    security_context: SecurityContext | None = Field(
        None, description="Merged over the engine's container securityContext."
    )
    pod_security_context: PodSecurityContext | None = Field(
        None, description="Merged over the engine's pod securityContext."
    )
    priority_class_name: str | None = None
    strategy: StrategySpec | None = Field(
        None, description="Default: Recreate for a ReadWriteOnce cache claim, else RollingUpdate maxSurge 0, maxUnavailable 1."
    )
    progress_deadline_seconds: int | None = Field(
        None, ge=1, description="Default: the startup window plus 10 minutes (scheduling, image pull, download)."
    )
    disruption_budget: DisruptionBudgetSpec = Field(default_factory=DisruptionBudgetSpec)
    topology_spread: TopologySpreadSpec = Field(default_factory=TopologySpreadSpec)
    drain_delay_seconds: int = Field(
        15, ge=0, description="On shutdown, time for the gateway to drop the replica before the engine is drained."
    )
    termination_grace_period_seconds: int | None = Field(
        None, ge=0, description="Default: drainDelaySeconds + gateway.requestTimeoutS + 30: in-flight streams finish."
    )
    autoscaling: AutoscalingSpec | None = None

    @model_validator(mode="after")
    def _deadline_covers_startup(self) -> "ModelDeploy":
        deadline = self.progress_deadline_seconds
        if deadline is not None and deadline < self.probes.startup_timeout_seconds:
            raise ValueError(
                f"progressDeadlineSeconds ({deadline}) is shorter than probes.startupTimeoutSeconds "
                f"({self.probes.startup_timeout_seconds}): a normal model load would be reported as a failed rollout"
            )
        return self


class ServiceSpec(SpecModel):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = Field(80, ge=1, le=65535, description="Service port in front of the gateway's own port.")
    annotations: dict[str, str] = Field(default_factory=dict)


class GatewayDeploy(SpecModel):
    """Kubernetes settings of the gateway Deployment (fields of `gateway:`)."""

    replicas: int = Field(
        1, ge=1,
        description="Gateway processes (flotilla up: on consecutive ports from `port`) or pods (chart). More than "
        "one share queues and slots through RabbitMQ: gateway.dispatcher.kind rabbitmq, or rabbitmq.type in the chart.",
    )
    image: ImageSpec = Field(default_factory=ImageSpec)
    resources: ResourceRequirements | None = Field(None, description="Default: the chart's gateway resources.")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    affinity: Affinity | None = None
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    env: list[EnvVar] = Field(default_factory=list, description="Extra container env entries.")
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    tokens_secret: str | None = Field(
        None,
        description="Existing Secret with one key per token name holding its value; the chart then makes no "
        "token Secret and ignores the `token` values.",
    )
    security_context: SecurityContext | None = Field(None, description="Merged over the default.")
    pod_security_context: PodSecurityContext | None = Field(None, description="Merged over the default.")
    request_timeout_s: int = Field(
        3600, ge=1,
        description="Longest one request may take end to end, queue wait included: the one timeout knob. The chart "
        "derives the Ingress/HTTPRoute timeouts, the gateway's upstream and queue bounds and the drain bounds of "
        "gateway and engines from it.",
    )
    drain_delay_seconds: int = Field(
        10, ge=0, description="On shutdown, time for Services and Ingresses to drop the pod before the gateway drains."
    )
    termination_grace_period_seconds: int | None = Field(
        None, ge=0, description="Default: drainDelaySeconds + requestTimeoutS + 30."
    )
    disruption_budget: DisruptionBudgetSpec = Field(default_factory=DisruptionBudgetSpec)
    topology_spread: TopologySpreadSpec = Field(default_factory=TopologySpreadSpec)


class GlobalSpec(SpecModel):
    image_registry: str | None = Field(
        None, description="Registry for every image (replaces the image's own registry host, if any)."
    )
    image_pull_secrets: list[str] = Field(default_factory=list)
    cluster_domain: str = Field("cluster.local", description="DNS suffix of Services (headless discovery).")


class IngressSpec(SpecModel):
    enabled: bool = False
    class_name: str | None = None
    host: str | None = Field(None, description="Host name; none: every host.")
    path: str = "/"
    path_type: Literal["Prefix", "Exact", "ImplementationSpecific"] = "Prefix"
    tls: list[IngressTLS] = Field(default_factory=list, description="Ingress TLS entries {hosts, secretName}.")
    annotations: dict[str, str] = Field(
        default_factory=lambda: dict(STREAMING_INGRESS_ANNOTATIONS),
        description="Default: no ingress-nginx buffering, 16m bodies; the chart adds read/send timeouts of "
        "gateway.requestTimeoutS unless given here.",
    )


class ParentReference(SpecModel):
    """A Gateway API parentRef (the Gateway an HTTPRoute attaches to)."""

    group: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str = Field(..., min_length=1)
    section_name: str | None = None
    port: int | None = Field(None, ge=1, le=65535)


class HttpRouteTimeouts(SpecModel):
    request: GatewayDuration | None = Field(None, description="Whole request; default: gateway.requestTimeoutS.")
    backend_request: GatewayDuration | None = Field(None, description="To the gateway; default: as `request`.")


class HttpRouteSpec(SpecModel):
    """Gateway API HTTPRoute to the gateway Service."""

    enabled: bool = False
    parent_refs: list[ParentReference] = Field(default_factory=list, description="Gateways to attach to.")
    hostnames: list[str] = Field(default_factory=list)
    path: str = "/"
    timeouts: HttpRouteTimeouts = Field(
        default_factory=HttpRouteTimeouts, description="Rule timeouts; default: gateway.requestTimeoutS for both."
    )
    annotations: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _needs_parent(self) -> "HttpRouteSpec":
        if self.enabled and not self.parent_refs:
            raise ValueError("httpRoute needs parentRefs: the Gateway(s) the route attaches to")
        return self


class ScrapeSpec(SpecModel):
    enabled: bool = False
    interval: str = "30s"
    scrape_timeout: str = "10s"
    labels: dict[str, str] = Field(default_factory=dict, description="Labels your Prometheus selects monitors by.")


class DashboardSpec(SpecModel):
    enabled: bool = False
    labels: dict[str, str] = Field(
        default_factory=lambda: {"grafana_dashboard": "1"}, description="Label the Grafana sidecar watches."
    )
    annotations: dict[str, str] = Field(default_factory=dict)


class MonitoringSpec(SpecModel):
    service_monitor: ScrapeSpec = Field(default_factory=ScrapeSpec)
    pod_monitor: ScrapeSpec = Field(default_factory=ScrapeSpec)
    grafana_dashboard: DashboardSpec = Field(default_factory=DashboardSpec)


class NetworkPolicySpec(SpecModel):
    """Engines accept traffic only from the gateway, and from these peers (Prometheus) for metrics."""

    enabled: bool = True
    metrics_from: list[NetworkPolicyPeer] = Field(
        default_factory=lambda: [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            }
        ],
        description="NetworkPolicy peers allowed to scrape engines (the engines serve metrics on their API port).",
    )


class SqliteDatabaseSpec(SpecModel):
    size: str = "1Gi"
    storage_class: str | None = None
    existing_claim: str | None = None


class ExternalDatabaseSpec(SpecModel):
    url: str | None = Field(None, description="The chart makes a Secret holding this URL.")
    existing_secret: str | None = Field(None, description="An existing Secret holding the URL.")
    secret_key: str = "DATABASE_URL"


class PostgresClusterSpec(SpecModel):
    """A CloudNativePG `Cluster` the chart makes (needs the CloudNativePG operator)."""

    instances: int = Field(1, ge=1)
    size: str = "10Gi"
    storage_class: str | None = None
    image_name: str | None = Field(None, description="PostgreSQL image; default: the operator's.")
    database: str = "flotilla"
    owner: str = "flotilla"
    resources: ResourceRequirements | None = Field(None, description="Default: the chart's postgresql resources.")


class TokenDatabaseSpec(SpecModel):
    """Where the gateway keeps tokens and usage in the cluster (`gateway.database` is the local URL)."""

    type: Literal["sqlite", "external", "postgresql"] = "sqlite"
    sqlite: SqliteDatabaseSpec = Field(default_factory=SqliteDatabaseSpec)
    external: ExternalDatabaseSpec = Field(default_factory=ExternalDatabaseSpec)
    postgresql: PostgresClusterSpec = Field(default_factory=PostgresClusterSpec)

    @model_validator(mode="after")
    def _external_has_source(self) -> "TokenDatabaseSpec":
        if self.type == "external" and bool(self.external.url) == bool(self.external.existing_secret):
            raise ValueError("tokenDatabase type 'external' needs exactly one of external.url, external.existingSecret")
        return self


class ExternalRabbitmqSpec(SpecModel):
    url: str | None = Field(None, description="amqp:// URL; the chart makes a Secret holding it.")
    existing_secret: str | None = None
    secret_key: str = "RABBITMQ_URL"


class RabbitmqClusterSpec(SpecModel):
    """A `RabbitmqCluster` the chart makes (needs the RabbitMQ Cluster Operator)."""

    replicas: int = Field(1, ge=1)
    image: str | None = Field(None, description="RabbitMQ image; default: the operator's.")
    storage: str = "10Gi"
    storage_class: str | None = None
    resources: ResourceRequirements | None = Field(None, description="Default: the operator's (1 CPU, 2Gi).")


class RabbitmqSpec(SpecModel):
    """The broker of the distributed gateway: when set, the gateway's dispatcher is RabbitMQ."""

    type: Literal["none", "external", "internal"] = "none"
    external: ExternalRabbitmqSpec = Field(default_factory=ExternalRabbitmqSpec)
    internal: RabbitmqClusterSpec = Field(default_factory=RabbitmqClusterSpec)

    @model_validator(mode="after")
    def _external_has_source(self) -> "RabbitmqSpec":
        if self.type == "external" and bool(self.external.url) == bool(self.external.existing_secret):
            raise ValueError("rabbitmq type 'external' needs exactly one of external.url, external.existingSecret")
        return self


class ExternalVectorStoreSpec(SpecModel):
    url: str | None = Field(None, description="postgresql://... of a server with pgvector; the chart makes a Secret holding it.")
    existing_secret: str | None = Field(None, description="An existing Secret holding the URL.")
    secret_key: str = "VECTOR_DB_URL"


class VectorStoreSpec(SpecModel):
    """Where pipelines' pgvector retrievers without a `url` keep their vectors in the cluster.

    internal: the chart's PostgreSQL (the CloudNativePG Cluster of tokenDatabase.postgresql, made with the
    `vector` extension); external: a URL from a Secret; none: every pgvector store names its own `url`.
    """

    type: Literal["none", "internal", "external"] = "none"
    external: ExternalVectorStoreSpec = Field(default_factory=ExternalVectorStoreSpec)

    @model_validator(mode="after")
    def _external_has_source(self) -> "VectorStoreSpec":
        if self.type == "external" and bool(self.external.url) == bool(self.external.existing_secret):
            raise ValueError("vectorStore type 'external' needs exactly one of external.url, external.existingSecret")
        return self


class HelmTestSpec(SpecModel):
    enabled: bool = Field(
        True, description="`helm test` sends a short completion through the gateway to every model (first token)."
    )


class DeploySettings(SpecModel):
    """Top-level keys only the chart reads."""

    global_: GlobalSpec = Field(default_factory=GlobalSpec, alias="global")
    ingress: IngressSpec = Field(default_factory=IngressSpec)
    http_route: HttpRouteSpec = Field(default_factory=HttpRouteSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    network_policy: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)
    token_database: TokenDatabaseSpec = Field(default_factory=TokenDatabaseSpec)
    rabbitmq: RabbitmqSpec = Field(default_factory=RabbitmqSpec)
    vector_store: VectorStoreSpec = Field(default_factory=VectorStoreSpec)
    helm_test: HelmTestSpec = Field(default_factory=HelmTestSpec)
