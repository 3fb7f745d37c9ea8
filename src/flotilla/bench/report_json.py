"""Results as JSON with vLLM's key names, overall at the top level and per class under `classes`.

One run: the result object itself. A sweep: {"sweep": [result per rate], "config": ...}.
Per-request lists use vLLM's names and units (seconds): ttfts, input_lens, output_lens.
Tokens never appear in the file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson

from flotilla.bench.config import BenchPlan
from flotilla.bench.runner import StepResult


def plan_summary(plan: BenchPlan) -> dict[str, Any]:
    return {
        "base_url": plan.base_url,
        "endpoint": plan.path,
        "warmup_s": plan.warmup_s,
        "duration_s": plan.duration_s,
        "ignore_eos": plan.ignore_eos,
        "goodput_ms": plan.goodput_ms or None,
        "percentiles": list(plan.percentiles),
        "seed": plan.seed,
        "classes": [
            {
                "name": c.name,
                "model": c.model,
                "rate": c.rate,
                "concurrency": c.concurrency,
                "burstiness": c.burstiness,
                "arrival": "constant" if c.burstiness is None else ("poisson" if c.burstiness == 1 else "gamma"),
                "num_requests": c.num_requests,
                "follows_sweep": c.follows_sweep,
                "authenticated": c.token is not None,
            }
            for c in plan.classes
        ],
    }


def step_json(step: StepResult) -> dict[str, Any]:
    measured = [r for r in step.records if r.measured]
    result: dict[str, Any] = dict(step.overall)
    if step.rate is not None:
        result["request_rate"] = step.rate
    result["send_lag_ms"] = step.send_lag
    result["responses_without_usage"] = step.usage_missing
    result["interrupted"] = step.interrupted
    classes: dict[str, Any] = {}
    for cls in step.classes:
        mine = [r for r in measured if r.class_name == cls.name]
        per_class = dict(step.per_class[cls.name])
        per_class["request_rate"] = cls.rate
        per_class["max_concurrency"] = cls.concurrency
        per_class["ttfts"] = [r.ttft for r in mine]
        per_class["input_lens"] = [r.prompt_tokens for r in mine]
        per_class["output_lens"] = [r.output_tokens if r.success else 0 for r in mine]
        classes[cls.name] = per_class
    result["classes"] = classes
    result["ttfts"] = [r.ttft for r in measured]
    result["input_lens"] = [r.prompt_tokens for r in measured]
    result["output_lens"] = [r.output_tokens if r.success else 0 for r in measured]
    return result


def results_json(plan: BenchPlan, steps: list[StepResult]) -> dict[str, Any]:
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if len(steps) == 1 and steps[0].rate is None:
        result = step_json(steps[0])
        result["date"] = date
        result["config"] = plan_summary(plan)
        return result
    return {"date": date, "config": plan_summary(plan), "sweep": [step_json(s) for s in steps]}


def write_json(path: str | Path, plan: BenchPlan, steps: list[StepResult]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results_json(plan, steps), option=orjson.OPT_INDENT_2))
    return path
