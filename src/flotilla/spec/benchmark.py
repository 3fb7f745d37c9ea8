"""The `benchmark:` section: the same settings as `flotilla bench` flags, for a run or a chart Job.

Every field here has one `flotilla bench` flag of the same name in kebab-case (see
`flotilla.bench.config.SPEC_FLAG_NAMES`); flags given on the command line override the section.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from flotilla.spec.base import SpecModel
from flotilla.spec.kube import ResourceRequirements

_CLASS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
GOODPUT_METRICS = ("ttft", "tpot", "e2el")


class TrafficClassSpec(SpecModel):
    """One kind of traffic (a user group) with its own token, load and prompt lengths."""

    name: str = Field(..., description="Label of this class in the report (e.g. staff, students).")
    model: str | None = Field(None, description="Model this class calls; default: the benchmark's model.")
    token: str | None = Field(None, description="Bearer token of this class (so its priority); use ${ENV}.")
    token_name: str | None = Field(
        None, description="Name of a `gateway.tokens` entry of this spec whose token this class sends."
    )
    rate: float | None = Field(None, gt=0, description="Requests per second; default: the benchmark's rate.")
    concurrency: int | None = Field(
        None, ge=1, description="Alone: requests kept in flight (closed loop). With rate: a cap on in-flight."
    )
    burstiness: float | None = Field(None, gt=0, description="Gamma shape of inter-arrival times; 1 is Poisson.")
    num_requests: int | None = Field(None, ge=1, description="Measured requests of this class.")
    input_len: int | None = Field(None, ge=1)
    output_len: int | None = Field(None, ge=1)
    range_ratio: float | None = Field(None, ge=0, lt=1)
    dataset: str | None = Field(
        None, description="'random', 'builtin', 'conversations' (generated chats) or a ShareGPT JSON path."
    )
    turns: int | None = Field(None, ge=1, description="Multi-turn: user turns per conversation (see benchmark.turns).")

    @field_validator("name")
    @classmethod
    def _name_shape(cls, name: str) -> str:
        if not _CLASS_NAME.match(name):
            raise ValueError(f"class name {name!r} must be 1-64 of letters, digits, '_', '.', '-'")
        return name


class BenchmarkResultsVolume(SpecModel):
    """Chart only: a volume the Job writes --json/--html results to."""

    enabled: bool = False
    size: str = "1Gi"
    storage_class: str | None = None
    existing_claim: str | None = None
    mount_path: str = Field("/results", description="jsonFile/htmlFile relative paths land here.")


class BenchmarkJobSpec(SpecModel):
    """Chart only: how the benchmark Job runs. `flotilla bench` ignores it."""

    results: BenchmarkResultsVolume = Field(default_factory=BenchmarkResultsVolume)
    resources: ResourceRequirements | None = Field(None, description="The Job's container; default: the chart's benchmark resources.")
    backoff_limit: int = Field(0, ge=0)
    active_deadline_seconds: int | None = Field(None, ge=1)
    ttl_seconds_after_finished: int | None = Field(None, ge=0)


class BenchmarkSpec(SpecModel):
    enabled: bool = Field(False, description="Chart: render a Job that runs `flotilla bench` against the gateway.")
    url: str | None = Field(None, description="Base URL of the OpenAI API; default: this spec's gateway.")
    model: str | None = Field(None, description="Model to load; default: the first model.")
    endpoint: Literal["chat", "completions"] = Field("chat", description="/v1/chat/completions or /v1/completions.")
    token: str | None = Field(None, description="Bearer token when no classes are given; use ${ENV}.")
    token_name: str | None = Field(None, description="Name of a `gateway.tokens` entry to send instead of `token`.")
    rate: float | None = Field(None, gt=0, description="Requests per second (per class unless a class sets its own).")
    concurrency: int | None = Field(
        None, ge=1, description="Alone: fixed concurrency (closed loop). With rate: a cap on requests in flight."
    )
    arrival: Literal["poisson", "gamma", "constant"] | None = Field(
        None, description="Inter-arrival times; default: poisson, or gamma when burstiness is not 1."
    )
    burstiness: float = Field(1.0, gt=0, description="Gamma shape: < 1 burstier, > 1 more even; 1.0 is Poisson.")
    sweep: list[float] = Field(
        default_factory=list, description="Run once per rate; a rate applies to classes that set none."
    )
    num_requests: int | None = Field(None, ge=1, description="Measured requests (shared among classes by rate).")
    duration_s: float | None = Field(None, gt=0, description="Measured seconds of traffic.")
    warmup_s: float = Field(0.0, ge=0, description="Seconds of traffic before measuring; excluded from results.")
    input_len: int = Field(256, ge=1, description="Prompt tokens of random prompts.")
    output_len: int = Field(128, ge=1, description="max_tokens of every request (datasets: unless given).")
    range_ratio: float = Field(0.0, ge=0, lt=1, description="Lengths drawn uniformly in len*(1±ratio).")
    dataset: str = Field(
        "random",
        description="'random', 'builtin', 'conversations' (generated multi-turn chats sharing system prompts) or "
        "a ShareGPT-format JSON path.",
    )
    turns: int | None = Field(
        None, ge=1,
        description="Multi-turn: replay up to this many user turns of each conversation (a ShareGPT file, or "
        "'conversations': default 4), each sent when the answer to the one before is complete, its prompt "
        "holding the conversation so far. With `rate`, conversations start at that rate.",
    )
    system_prompts: int = Field(4, ge=1, description="'conversations': system prompts shared by the conversations.")
    system_prompt_len: int = Field(512, ge=1, description="'conversations': tokens of each system prompt.")
    ignore_eos: bool = Field(True, description="Send ignore_eos so output lengths hold (vLLM, sim).")
    goodput: dict[str, float] = Field(
        default_factory=dict, description="SLOs in ms, e.g. {ttft: 300, tpot: 50}; keys ttft, tpot, e2el."
    )
    percentiles: list[float] = Field(default_factory=lambda: [90.0, 95.0, 99.0])
    seed: int = Field(0, description="Seed of arrivals and prompts: the same seed sends the same load.")
    timeout_s: float = Field(600.0, gt=0, description="Longest one request may take before it counts as failed.")
    json_file: str | None = Field(None, description="Write results as JSON (vLLM's key names) here.")
    html_file: str | None = Field(None, description="Write a self-contained HTML report here.")
    classes: list[TrafficClassSpec] = Field(default_factory=list)
    job: BenchmarkJobSpec = Field(default_factory=BenchmarkJobSpec)

    @field_validator("goodput")
    @classmethod
    def _goodput_keys(cls, slos: dict[str, float]) -> dict[str, float]:
        for key, value in slos.items():
            if key not in GOODPUT_METRICS:
                raise ValueError(f"goodput metric {key!r} is not one of {', '.join(GOODPUT_METRICS)}")
            if value <= 0:
                raise ValueError(f"goodput {key} must be a positive number of ms (got {value})")
        return slos

    @field_validator("percentiles")
    @classmethod
    def _percentiles_range(cls, values: list[float]) -> list[float]:
        for p in values:
            if not 0 < p < 100:
                raise ValueError(f"percentile {p} must be between 0 and 100 (exclusive)")
        return values

    @field_validator("sweep")
    @classmethod
    def _sweep_positive(cls, rates: list[float]) -> list[float]:
        for r in rates:
            if r <= 0:
                raise ValueError(f"sweep rate {r} must be > 0")
        return rates

    @model_validator(mode="after")
    def _class_names_unique(self) -> BenchmarkSpec:
        names = [c.name for c in self.classes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"benchmark class names must be unique; repeated: {', '.join(dupes)}")
        if self.num_requests is not None and self.duration_s is not None:
            raise ValueError("give numRequests or durationS, not both")
        return self
