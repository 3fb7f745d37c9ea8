"""Kubernetes-only sections of the spec, read by the Helm chart and ignored by `flotilla up`.

Keys here mirror Helm conventions (image, resources, nodeSelector, tolerations, affinity) so the
spec doubles as the chart's values file.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flotilla.spec.base import SpecModel


class ImageSpec(SpecModel):
    repository: str | None = Field(None, description="Default: the engine's official image.")
    tag: str | None = Field(None, description="Default: the engine's pinned tag.")
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


class GpuSpec(SpecModel):
    count: int | None = Field(None, ge=0, description="nvidia.com/gpu per pod; default: the tensor-parallel size.")
    resource_name: str = Field("nvidia.com/gpu", description="Extended resource name of the accelerator.")
    runtime_class_name: str | None = Field(None, description="e.g. 'nvidia'.")


class CacheSpec(SpecModel):
    """Where model weights are cached (HF_HOME), so a restart does not download again."""

    type: Literal["pvc", "hostPath", "emptyDir"] = "emptyDir"
    size: str = Field("50Gi", description="PVC size, or emptyDir sizeLimit.")
    storage_class: str | None = None
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"] = "ReadWriteOnce"
    existing_claim: str | None = Field(None, description="Use this PVC instead of making one.")
    host_path: str | None = Field(None, description="Node directory when type is hostPath.")
    mount_path: str = "/models"


class ExternalSecretSpec(SpecModel):
    """external-secrets.io/v1 ExternalSecret that materialises the Hugging Face token."""

    secret_store_ref: dict[str, str] = Field(
        default_factory=lambda: {"name": "", "kind": "ClusterSecretStore"},
        description="{name, kind: SecretStore|ClusterSecretStore}.",
    )
    remote_key: str = ""
    property: str | None = None
    refresh_interval: str = "1h"


class HfTokenSpec(SpecModel):
    """Hugging Face token: an existing Secret, a Secret the chart makes, or an ExternalSecret."""

    value: str | None = Field(None, description="The chart makes a Secret holding it.")
    existing_secret: str | None = None
    secret_key: str = "HF_TOKEN"
    external_secret: ExternalSecretSpec | None = None


class ProbesSpec(SpecModel):
    """Sized for model loading: liveness never kills a slow loader (startup probe guards it)."""

    startup_timeout_seconds: int = Field(1800, ge=10, description="Window a replica has to load its model.")
    period_seconds: int = Field(10, ge=1)
    readiness_failure_threshold: int = Field(3, ge=1)
    liveness_failure_threshold: int = Field(6, ge=1)


class ModelDeploy(SpecModel):
    """Per-model Kubernetes settings."""

    image: ImageSpec = Field(default_factory=ImageSpec)
    gpu: GpuSpec = Field(default_factory=GpuSpec)
    resources: dict[str, Any] = Field(default_factory=dict, description="Container resources (requests/limits).")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] = Field(default_factory=dict)
    shm_size: str | None = Field("8Gi", description="Memory-backed /dev/shm size (tensor parallel needs it).")
    cache: CacheSpec = Field(default_factory=CacheSpec)
    hf_token: HfTokenSpec | None = None
    probes: ProbesSpec = Field(default_factory=ProbesSpec)
    env: list[dict[str, Any]] = Field(default_factory=list, description="Extra container env entries.")
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    autoscaling: "AutoscalingSpec | None" = None


class AutoscalingSpec(SpecModel):
    """KEDA ScaledObject on the gateway's queue depth for this model."""

    enabled: bool = False
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(4, ge=1)
    queue_depth_per_replica: int = Field(8, ge=1, description="Target waiting requests per replica.")
    prometheus_address: str = "http://prometheus-operated.monitoring.svc:9090"


ModelDeploy.model_rebuild()


class GatewayDeploy(SpecModel):
    """Kubernetes settings of the gateway Deployment (fields of `gateway:`)."""

    replicas: int = Field(1, ge=1, description="Gateway pods (more than one needs dispatcher: rabbitmq).")
    image: ImageSpec = Field(default_factory=ImageSpec)
    resources: dict[str, Any] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] = Field(default_factory=dict)
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    database_secret: str | None = Field(
        None, description="Existing Secret whose key DATABASE_URL holds the database URL (chart)."
    )


class GlobalSpec(SpecModel):
    image_registry: str | None = Field(None, description="Prefix every image with this registry.")
    image_pull_secrets: list[str] = Field(default_factory=list)


class DeploySettings(SpecModel):
    """Top-level keys only the chart reads."""

    global_: GlobalSpec = Field(default_factory=GlobalSpec, alias="global")
