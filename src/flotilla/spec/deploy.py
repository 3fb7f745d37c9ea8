"""Kubernetes-only sections of the spec, read by the Helm chart and ignored by `flotilla up`.

Keys here mirror Helm conventions (image, resources, nodeSelector, tolerations, affinity) so the
spec doubles as the chart's values file. Defaults here are the chart's defaults: the chart's
values.yaml and its generated files/defaults.yaml are checked against them by tests/chart.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from flotilla.spec.base import SpecModel

# ingress-nginx keeps a proxied request open 60 s by default: far too short for a long stream.
STREAMING_INGRESS_ANNOTATIONS: dict[str, str] = {
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-buffering": "off",
    "nginx.ingress.kubernetes.io/proxy-body-size": "16m",
}


class ImageSpec(SpecModel):
    repository: str | None = Field(None, description="Default: the engine's official image.")
    tag: str | None = Field(None, description="Default: the engine's pinned tag.")
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


class GpuSpec(SpecModel):
    count: int | None = Field(None, ge=0, description="GPUs per pod; default: the tensor-parallel size (numShard for TGI).")
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


class ProbesSpec(SpecModel):
    """Sized for model loading: liveness never kills a slow loader (the startup probe guards it)."""

    startup_timeout_seconds: int = Field(1800, ge=10, description="Window a replica has to load its model.")
    period_seconds: int = Field(10, ge=1)
    timeout_seconds: int = Field(5, ge=1, description="One probe's HTTP timeout.")
    readiness_failure_threshold: int = Field(3, ge=1)
    liveness_failure_threshold: int = Field(6, ge=1)


class AutoscalingSpec(SpecModel):
    """KEDA ScaledObject on the gateway's queue depth for this model."""

    enabled: bool = False
    min_replicas: int = Field(1, ge=0, description="0 lets KEDA scale the model away when nobody waits.")
    max_replicas: int = Field(4, ge=1)
    queue_depth_per_replica: int = Field(8, ge=1, description="Target waiting requests per replica.")
    prometheus_address: str = "http://prometheus-operated.monitoring.svc:9090"
    query: str | None = Field(
        None, description="PromQL override; default: the gateway's flotilla_queue_depth summed for this model."
    )
    polling_interval_seconds: int = Field(15, ge=1)
    cooldown_seconds: int = Field(600, ge=0, description="Wait before scaling to zero (KEDA cooldownPeriod).")
    scale_down_stabilization_seconds: int = Field(
        600, ge=0, description="HPA window before removing replicas: model loading is slow, so be patient."
    )

    @model_validator(mode="after")
    def _bounds(self) -> "AutoscalingSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas ({self.min_replicas}) is above maxReplicas ({self.max_replicas})")
        return self


class ModelDeploy(SpecModel):
    """Per-model Kubernetes settings."""

    image: ImageSpec = Field(default_factory=ImageSpec)
    gpu: GpuSpec = Field(default_factory=GpuSpec)
    resources: dict[str, Any] = Field(default_factory=dict, description="Container resources (requests/limits).")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] = Field(default_factory=dict)
    shm_size: str | None = Field("8Gi", description="Memory-backed /dev/shm size (tensor parallel needs it); null: none.")
    cache: CacheSpec = Field(default_factory=CacheSpec)
    hf_token: HfTokenSpec | None = None
    probes: ProbesSpec = Field(default_factory=ProbesSpec)
    env: list[dict[str, Any]] = Field(default_factory=list, description="Extra container env entries.")
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    pod_labels: dict[str, str] = Field(default_factory=dict)
    security_context: dict[str, Any] = Field(
        default_factory=dict, description="Merged over the engine's container securityContext."
    )
    pod_security_context: dict[str, Any] = Field(
        default_factory=dict, description="Merged over the engine's pod securityContext."
    )
    priority_class_name: str | None = None
    termination_grace_period_seconds: int = Field(60, ge=0, description="Lets in-flight generations finish.")
    autoscaling: AutoscalingSpec | None = None


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
    resources: dict[str, Any] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] = Field(default_factory=dict)
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    env: list[dict[str, Any]] = Field(default_factory=list, description="Extra container env entries.")
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    tokens_secret: str | None = Field(
        None,
        description="Existing Secret with one key per token name holding its value; the chart then makes no "
        "token Secret and ignores the `token` values.",
    )
    security_context: dict[str, Any] = Field(default_factory=dict, description="Merged over the default.")
    pod_security_context: dict[str, Any] = Field(default_factory=dict, description="Merged over the default.")


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
    tls: list[dict[str, Any]] = Field(default_factory=list, description="Ingress TLS entries {hosts, secretName}.")
    annotations: dict[str, str] = Field(
        default_factory=lambda: dict(STREAMING_INGRESS_ANNOTATIONS),
        description="Default: ingress-nginx read/send timeouts of an hour and no buffering, for streams.",
    )


class HttpRouteSpec(SpecModel):
    """Gateway API HTTPRoute to the gateway Service."""

    enabled: bool = False
    parent_refs: list[dict[str, Any]] = Field(default_factory=list, description="Gateways to attach to.")
    hostnames: list[str] = Field(default_factory=list)
    path: str = "/"
    timeouts: dict[str, str] = Field(
        default_factory=dict, description="HTTPRoute rule timeouts, e.g. {request: 3600s}: streams are long."
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
    metrics_from: list[dict[str, Any]] = Field(
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
    resources: dict[str, Any] = Field(default_factory=dict)


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
    resources: dict[str, Any] = Field(default_factory=dict)


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


class HelmTestSpec(SpecModel):
    enabled: bool = Field(True, description="`helm test` lists the models through the gateway.")


class DeploySettings(SpecModel):
    """Top-level keys only the chart reads."""

    global_: GlobalSpec = Field(default_factory=GlobalSpec, alias="global")
    ingress: IngressSpec = Field(default_factory=IngressSpec)
    http_route: HttpRouteSpec = Field(default_factory=HttpRouteSpec)
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    network_policy: NetworkPolicySpec = Field(default_factory=NetworkPolicySpec)
    token_database: TokenDatabaseSpec = Field(default_factory=TokenDatabaseSpec)
    rabbitmq: RabbitmqSpec = Field(default_factory=RabbitmqSpec)
    helm_test: HelmTestSpec = Field(default_factory=HelmTestSpec)
