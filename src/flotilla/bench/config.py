"""Turn the `benchmark:` section and command-line flags into one resolved plan.

Flags override the spec; with several classes, a class inherits every setting it does not give
from the top level (so `--rate` or `--sweep` sets the rate of classes that give none).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ValidationError

from flotilla.bench.conversations import ConversationSource, conversation_source
from flotilla.bench.datasets import DatasetError, PromptSource, prompt_source
from flotilla.spec.benchmark import BenchmarkSpec, TrafficClassSpec
from flotilla.spec.root import FlotillaSpec

# `benchmark:` field -> `flotilla bench` flag (the chart renders a Job's arguments from this).
SPEC_FLAG_NAMES: dict[str, str] = {
    "url": "--url",
    "model": "--model",
    "endpoint": "--endpoint",
    "token": "--token",
    "token_name": "--token-name",
    "rate": "--rate",
    "concurrency": "--concurrency",
    "arrival": "--arrival",
    "burstiness": "--burstiness",
    "sweep": "--sweep",
    "num_requests": "--num-requests",
    "duration_s": "--duration",
    "warmup_s": "--warmup",
    "input_len": "--input-len",
    "output_len": "--output-len",
    "range_ratio": "--range-ratio",
    "dataset": "--dataset",
    "turns": "--turns",
    "system_prompts": "--system-prompts",
    "system_prompt_len": "--system-prompt-len",
    "ignore_eos": "--ignore-eos/--no-ignore-eos",
    "goodput": "--goodput",
    "percentiles": "--percentiles",
    "seed": "--seed",
    "timeout_s": "--timeout",
    "json_file": "--json",
    "html_file": "--html",
    "classes": "--class",
}
DEFAULT_NUM_REQUESTS = 200


class BenchConfigError(ValueError):
    """Settings that cannot make a run; the message names the flag or spec key."""


@dataclass(frozen=True)
class ClassPlan:
    name: str
    model: str
    token: str | None
    rate: float | None  # None with concurrency: closed loop
    concurrency: int | None  # with rate: a cap on in-flight requests
    burstiness: float | None  # gamma shape; None: constant spacing
    num_requests: int | None  # None: run for the plan's duration (multi-turn: measured turns)
    prompts: PromptSource | None  # None: the class replays conversations
    follows_sweep: bool = False
    conversations: ConversationSource | None = None  # multi-turn: conversations, started at `rate`

    @property
    def multi_turn(self) -> bool:
        return self.conversations is not None

    @property
    def label(self) -> str:
        unit = "conversations/s" if self.multi_turn else "req/s"
        if self.rate is not None and self.concurrency is not None:
            return f"{self.rate:g} {unit}, ≤{self.concurrency} in flight"
        if self.rate is not None:
            return f"{self.rate:g} {unit}"
        return f"concurrency {self.concurrency}" + (" (conversations)" if self.multi_turn else "")


@dataclass(frozen=True)
class BenchPlan:
    base_url: str  # ends with /v1
    endpoint: Literal["chat", "completions"]
    classes: tuple[ClassPlan, ...]
    sweep: tuple[float, ...]  # empty: one run
    duration_s: float | None
    warmup_s: float
    ignore_eos: bool
    goodput_ms: dict[str, float]
    percentiles: tuple[float, ...]
    seed: int
    timeout_s: float
    json_file: str | None
    html_file: str | None

    @property
    def path(self) -> str:
        return "/chat/completions" if self.endpoint == "chat" else "/completions"

    def steps(self) -> list[tuple[float | None, tuple[ClassPlan, ...]]]:
        """(swept rate, classes at that rate) for each run."""
        if not self.sweep:
            return [(None, self.classes)]
        return [
            (rate, tuple(replace(c, rate=rate) if c.follows_sweep else c for c in self.classes)) for rate in self.sweep
        ]


def merge_settings(section: BenchmarkSpec | None, overrides: dict[str, Any]) -> BenchmarkSpec:
    """The spec's section with the given flags (non-None values) on top."""
    data = section.model_dump(exclude_unset=True) if section is not None else {}
    # A stop condition given as a flag replaces the spec's, whichever kind it is.
    if overrides.get("num_requests") is not None:
        data.pop("duration_s", None)
    if overrides.get("duration_s") is not None:
        data.pop("num_requests", None)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return BenchmarkSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            where = SPEC_FLAG_NAMES.get(loc[0], loc[0]) if loc else "settings"
            if loc and loc[0] == "classes" and len(loc) > 2:
                where = f"class #{int(loc[1]) + 1} {loc[2]}"
            message = error["msg"].removeprefix("Value error, ")
            if "input" in error and not isinstance(error["input"], (dict, list)) and "token" not in where:
                message += f" (got {error['input']!r})"
            problems.append(f"{where}: {message}")
        raise BenchConfigError("; ".join(problems)) from None


def normalize_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BenchConfigError(f"--url {url!r}: give an http(s) URL such as http://127.0.0.1:8000")
    base = url.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base if base.endswith("/v1") else base + "/v1"


def _spec_url(spec: FlotillaSpec | None) -> str:
    if spec is None:
        raise BenchConfigError("--url is required (the gateway or engine to load), or --spec FILE to use its gateway")
    host = spec.gateway.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{spec.gateway.port}"


def _token_by_name(name: str, spec: FlotillaSpec | None, where: str) -> str:
    if spec is None:
        raise BenchConfigError(f"{where}: token-name {name!r} needs --spec FILE holding gateway.tokens")
    for token in spec.gateway.tokens:
        if token.name == name:
            return token.token
    known = ", ".join(t.name for t in spec.gateway.tokens) or "none"
    raise BenchConfigError(f"{where}: no gateway token named {name!r} in the spec (known: {known})")


def _class_token(c: TrafficClassSpec, settings: BenchmarkSpec, spec: FlotillaSpec | None, where: str) -> str | None:
    """The class's own token (value or spec token name), else the top level's."""
    for value, name in ((c.token, c.token_name), (settings.token, settings.token_name)):
        if value:
            return value
        if name:
            return _token_by_name(name, spec, where)
    return None


def _burstiness(arrival: str | None, burstiness: float, where: str) -> float | None:
    if arrival == "constant":
        if burstiness != 1.0:
            raise BenchConfigError(f"{where}: burstiness applies to gamma arrivals, not constant ones")
        return None
    if arrival == "poisson" and burstiness != 1.0:
        raise BenchConfigError(f"{where}: Poisson arrivals have burstiness 1; use --arrival gamma for {burstiness:g}")
    return burstiness


def _split_requests(total: int, classes: list[TrafficClassSpec], rates: list[float | None]) -> list[int]:
    """Measured requests per class: given counts kept, the rest shared by rate (or evenly)."""
    counts: list[int | None] = [c.num_requests for c in classes]
    open_idx = [i for i, n in enumerate(counts) if n is None]
    remaining = total - sum(n for n in counts if n is not None)
    if open_idx and remaining < len(open_idx):
        raise BenchConfigError(
            f"--num-requests {total} leaves fewer than one request for each class without num-requests"
        )
    weights = [rates[i] for i in open_idx]
    if any(w is None for w in weights):
        weights = [1.0] * len(open_idx)
    weight_sum = sum(w for w in weights if w is not None)
    shares = [max(1, round(remaining * (w or 0.0) / weight_sum)) for w in weights]
    if shares:
        shares[-1] = max(1, remaining - sum(shares[:-1]))
    for i, share in zip(open_idx, shares):
        counts[i] = share
    return [int(n or 0) for n in counts]


def _follows_sweep(c: TrafficClassSpec) -> bool:
    """A class that gives neither its own rate nor its own concurrency takes the swept rate."""
    return c.rate is None and c.concurrency is None


def resolve_plan(settings: BenchmarkSpec, spec: FlotillaSpec | None = None) -> BenchPlan:
    base_url = normalize_base_url(settings.url or _spec_url(spec))
    model = settings.model or (spec.models[0].name if spec is not None else None)
    if not model:
        raise BenchConfigError("--model is required (the OpenAI model name to call)")

    explicit = settings.model_fields_set
    classes = settings.classes or [
        TrafficClassSpec(name="default", token=settings.token, token_name=settings.token_name)
    ]
    sweeping = bool(settings.sweep)
    rates: list[float | None] = []
    for c in classes:
        rate = c.rate if c.rate is not None else settings.rate
        if sweeping and _follows_sweep(c):
            rate = settings.sweep[0]
        rates.append(rate)

    if settings.duration_s is None:
        total = settings.num_requests
        if total is None and not all(c.num_requests for c in classes):
            total = DEFAULT_NUM_REQUESTS
        counts = _split_requests(total or 0, classes, rates) if total else [c.num_requests or 0 for c in classes]
    else:
        if any(c.num_requests for c in classes):
            raise BenchConfigError("--duration and a class's num-requests do not mix: give one way to stop")
        counts = [0] * len(classes)

    plans = []
    for c, rate, count in zip(classes, rates, counts):
        where = f"class {c.name}" if settings.classes else "settings"
        concurrency = c.concurrency if c.concurrency is not None else settings.concurrency
        if rate is None and concurrency is None:
            raise BenchConfigError(
                f"{where}: no load given: set a rate (--rate, --sweep or rate=) "
                "or a concurrency (--concurrency or concurrency=)"
            )
        token = _class_token(c, settings, spec, where)
        output_len = c.output_len or (settings.output_len if "output_len" in explicit else None)
        dataset = c.dataset or settings.dataset
        turns = c.turns if c.turns is not None else settings.turns
        input_len = c.input_len or settings.input_len
        range_ratio = c.range_ratio if c.range_ratio is not None else settings.range_ratio
        prompts: PromptSource | None = None
        conversations: ConversationSource | None = None
        try:
            if dataset == "conversations" or turns is not None:
                if settings.endpoint != "chat":
                    raise BenchConfigError(f"{where}: multi-turn conversations need --endpoint chat")
                conversations = conversation_source(
                    dataset, turns, input_len, output_len, range_ratio,
                    settings.system_prompts, settings.system_prompt_len, settings.seed,
                )
            else:
                prompts = prompt_source(dataset, input_len, output_len, range_ratio)
        except DatasetError as exc:
            raise BenchConfigError(f"{where}: {exc}") from None
        burstiness = c.burstiness if c.burstiness is not None else settings.burstiness
        plans.append(
            ClassPlan(
                name=c.name,
                model=c.model or model,
                token=token,
                rate=rate,
                concurrency=concurrency,
                burstiness=_burstiness(settings.arrival, burstiness, where),
                num_requests=count or None,
                prompts=prompts,
                follows_sweep=sweeping and _follows_sweep(c),
                conversations=conversations,
            )
        )
    if sweeping and not any(p.follows_sweep for p in plans):
        raise BenchConfigError("--sweep changes nothing: every class sets its own rate")

    return BenchPlan(
        base_url=base_url,
        endpoint=settings.endpoint,
        classes=tuple(plans),
        sweep=tuple(settings.sweep),
        duration_s=settings.duration_s,
        warmup_s=settings.warmup_s,
        ignore_eos=settings.ignore_eos,
        goodput_ms=dict(settings.goodput),
        percentiles=tuple(settings.percentiles),
        seed=settings.seed,
        timeout_s=settings.timeout_s,
        json_file=settings.json_file,
        html_file=settings.html_file,
    )
