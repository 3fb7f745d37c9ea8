"""The `benchmark:` section: the same settings as `flotilla bench` flags, for a run or a chart Job."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from flotilla.spec.base import SpecModel


class TrafficClassSpec(SpecModel):
    name: str
    token: str | None = Field(None, description="Bearer token of this class (so its priority).")
    rate: float | None = Field(None, gt=0, description="Requests per second of this class.")
    concurrency: int | None = Field(None, ge=1)
    input_len: int | None = Field(None, ge=1)
    output_len: int | None = Field(None, ge=1)


class BenchmarkSpec(SpecModel):
    enabled: bool = Field(False, description="Chart: render a Job that runs `flotilla bench` against the gateway.")
    model: str | None = Field(None, description="Model to load; default: the first model.")
    url: str | None = Field(None, description="Default: the gateway of this spec.")
    token: str | None = None
    rate: float | None = Field(None, gt=0)
    concurrency: int | None = Field(None, ge=1)
    arrival: Literal["poisson", "gamma", "constant"] = "poisson"
    burstiness: float = Field(1.0, gt=0, description="Gamma shape; 1.0 is Poisson.")
    num_requests: int | None = Field(None, ge=1)
    duration_s: float | None = Field(None, gt=0)
    warmup_s: float = Field(0.0, ge=0)
    input_len: int = Field(256, ge=1)
    output_len: int = Field(128, ge=1)
    range_ratio: float = Field(0.0, ge=0, le=1)
    dataset: str | None = Field(None, description="'random', 'builtin' or a ShareGPT JSON path.")
    goodput: dict[str, float] = Field(default_factory=dict, description="SLOs in ms: ttft, tpot, e2el.")
    classes: list[TrafficClassSpec] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict, description="Chart-only Job settings (resources, pvc).")
