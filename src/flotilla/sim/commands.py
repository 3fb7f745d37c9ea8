"""`flotilla sim`: run the simulated vLLM-like engine."""

from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError

from flotilla.spec.engines import SimOptions


def sim(
    port: int = typer.Option(8000, "--port", "-p", help="Port to listen on (0: any free port, printed at start)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    model: str = typer.Option("sim", "--model", help="The model name served (what clients send as `model`)."),
    ttft_ms: float | None = typer.Option(None, "--ttft-ms", help="Time to first token of a lone request (ms)."),
    itl_ms: float | None = typer.Option(None, "--itl-ms", help="Inter-token latency of a lone request (ms)."),
    max_num_seqs: int | None = typer.Option(None, "--max-num-seqs", help="Sequences run at once; more wait (in --scheduling-policy order)."),
    batch_slowdown: float | None = typer.Option(
        None, "--batch-slowdown", help="Relative slowdown of TTFT and ITL per extra running sequence."
    ),
    output_tokens_mean: int | None = typer.Option(
        None, "--output-tokens-mean", help="Mean output length when a request gives no max_tokens."
    ),
    deterministic: bool | None = typer.Option(
        None, "--deterministic/--no-deterministic", help="Exact output lengths, no jitter (for tests)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the output-length and fault draws."),
    error_rate: float | None = typer.Option(None, "--error-rate", help="Fraction of requests answered HTTP 500."),
    die_mid_stream_rate: float | None = typer.Option(
        None, "--die-mid-stream-rate", help="Fraction of streams cut off halfway."
    ),
    max_model_len: int | None = typer.Option(None, "--max-model-len", help="Context length in tokens."),
    metrics_dialect: str | None = typer.Option(
        None, "--metrics-dialect", help="Whose /metrics names to speak: vllm (default), sglang, tgi, llamacpp."
    ),
    kv_transfer_ms: float | None = typer.Option(
        None, "--kv-transfer-ms", help="Decode role: delay standing for the KV-cache transfer (ms)."
    ),
    scheduling_policy: str | None = typer.Option(
        None, "--scheduling-policy", help="fcfs (default) or priority: vLLM's ordering of waiting requests by the "
        "body's `priority` (lower first), with preemption of the lowest priority when KV blocks run out."
    ),
    num_gpu_blocks: int | None = typer.Option(
        None, "--num-gpu-blocks", help="KV cache size in blocks of 16 tokens (default: never short)."
    ),
    enable_prefix_caching: bool | None = typer.Option(
        None, "--enable-prefix-caching/--no-enable-prefix-caching",
        help="Keep ended requests' KV blocks for reuse by prompts that start the same (vLLM automatic prefix caching).",
    ),
    prefill_ms_per_token: float | None = typer.Option(
        None, "--prefill-ms-per-token", help="Time to first token added per prompt token not found in the prefix cache (ms)."
    ),
    lora: list[str] = typer.Option([], "--lora", help="A LoRA adapter name served besides the model (repeat)."),
    role: str | None = typer.Option(
        None, "--role", help="Disaggregated role: prefill (returns KV-transfer parameters) or decode."
    ),
) -> None:
    """Run the simulated vLLM-like engine (OpenAI API, continuous batching, metrics in an engine's dialect)."""
    from flotilla.sim.server import run_sim  # keeps `flotilla --help` from importing aiohttp

    given: dict[str, Any] = {
        "ttft_ms": ttft_ms,
        "itl_ms": itl_ms,
        "max_num_seqs": max_num_seqs,
        "batch_slowdown": batch_slowdown,
        "output_tokens_mean": output_tokens_mean,
        "deterministic": deterministic,
        "seed": seed,
        "error_rate": error_rate,
        "die_mid_stream_rate": die_mid_stream_rate,
        "max_model_len": max_model_len,
        "metrics_dialect": metrics_dialect,
        "kv_transfer_ms": kv_transfer_ms,
        "scheduling_policy": scheduling_policy,
        "num_gpu_blocks": num_gpu_blocks,
        "enable_prefix_caching": enable_prefix_caching,
        "prefill_ms_per_token": prefill_ms_per_token,
    }
    try:
        options = SimOptions(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        for problem in exc.errors():
            if problem["loc"]:
                flag = "--" + str(problem["loc"][0]).replace("_", "-")
                typer.echo(f"flotilla sim: {flag}: {problem['msg']} (got {problem.get('input')!r})", err=True)
            else:  # a rule across options
                typer.echo(f"flotilla sim: {problem['msg'].removeprefix('Value error, ')}", err=True)
        raise typer.Exit(2) from None
    if not 0 <= port <= 65535:
        typer.echo(f"flotilla sim: --port: must be 0..65535, got {port}", err=True)
        raise typer.Exit(2)
    if role not in (None, "prefill", "decode"):
        typer.echo(f"flotilla sim: --role: must be prefill or decode, got {role!r}", err=True)
        raise typer.Exit(2)
    if model in lora:
        typer.echo(f"flotilla sim: --lora {model!r} is the model's own name", err=True)
        raise typer.Exit(2)
    run_sim(options, model, host=host, port=port, adapters=tuple(dict.fromkeys(lora)), role=role)


def sim_args(options: SimOptions) -> list[str]:
    """The `flotilla sim` flags reproducing `options` (for launchers: local runner, chart, tests)."""
    args: list[str] = []
    for name, value in options.model_dump().items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        else:
            args += [flag, str(value)]
    return args


def register(app: typer.Typer) -> None:
    app.command()(sim)
