"""`flotilla bench`: load an OpenAI-compatible endpoint and report vLLM's serving metrics per class."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from flotilla.bench.classes import ClassSpecError, parse_class
from flotilla.bench.config import BenchConfigError, merge_settings, resolve_plan
from flotilla.spec.loader import SpecError, load_spec

_GOODPUT_ITEM = re.compile(r"^(ttft|tpot|e2el):([0-9]*\.?[0-9]+)$")
_HELP_EXAMPLE = """
Examples:

  flotilla bench --url http://127.0.0.1:8000 --model chat --token $TOKEN --rate 10 --num-requests 300

  flotilla bench --url http://127.0.0.1:8000 --model chat --duration 60 --warmup 5 \\
      --class staff:token-env=STAFF_TOKEN,rate=2 --class students:token-env=STUDENT_TOKEN,rate=20 \\
      --goodput ttft:300 tpot:50 --json results.json --html report.html

  flotilla bench --spec flotilla.yaml --sweep 2,4,8,16 --html sweep.html

  flotilla bench --url http://127.0.0.1:8000 --model chat --dataset conversations --turns 6 \
      --system-prompts 4 --concurrency 16 --duration 60
"""


def _split_numbers(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    values = []
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise BenchConfigError(
                f"{flag}: {part!r} is not a number (give a comma-separated list, e.g. 1,2,4)"
            ) from None
    if not values:
        raise BenchConfigError(f"{flag}: give at least one number")
    return values


def parse_goodput(items: list[str]) -> dict[str, float] | None:
    """`ttft:300 tpot:50` (also comma-separated, or one --goodput per item) → {'ttft': 300, 'tpot': 50}."""
    if not items:
        return None
    slos: dict[str, float] = {}
    for item in (part for text in items for part in re.split(r"[,\s]+", text) if part):
        match = _GOODPUT_ITEM.match(item)
        if not match:
            raise BenchConfigError(
                f"--goodput: {item!r} is not METRIC:MS with METRIC one of ttft, tpot, e2el (e.g. ttft:300)"
            )
        slos[match[1]] = float(match[2])
    return slos


def bench(
    ctx: typer.Context,
    spec_file: Path | None = typer.Option(None, "--spec", help="Read settings from this spec's `benchmark:` section."),
    url: str | None = typer.Option(None, "--url", help="Base URL of the OpenAI API (gateway or engine)."),
    model: str | None = typer.Option(None, "--model", help="Model name to call."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="chat (default) or completions."),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="FLOTILLA_BENCH_TOKEN",
        show_envvar=False,
        help="Bearer token (or FLOTILLA_BENCH_TOKEN).",
    ),
    token_name: str | None = typer.Option(None, "--token-name", help="Use the spec's gateway token of this name."),
    rate: float | None = typer.Option(None, "--rate", help="Requests per second (per class without its own)."),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="Alone: fixed concurrency. With --rate: a cap on requests in flight."
    ),
    arrival: str | None = typer.Option(None, "--arrival", help="poisson (default), gamma or constant."),
    burstiness: float | None = typer.Option(None, "--burstiness", help="Gamma shape: <1 burstier, >1 more even."),
    sweep: str | None = typer.Option(None, "--sweep", help="Rates to run one after another, e.g. 1,2,4,8."),
    num_requests: int | None = typer.Option(None, "--num-requests", help="Measured requests (default 200)."),
    duration: float | None = typer.Option(None, "--duration", help="Measured seconds of traffic."),
    warmup: float | None = typer.Option(None, "--warmup", help="Seconds of traffic before measuring."),
    input_len: int | None = typer.Option(None, "--input-len", help="Prompt tokens of random prompts (256)."),
    output_len: int | None = typer.Option(None, "--output-len", help="max_tokens per request (128)."),
    range_ratio: float | None = typer.Option(None, "--range-ratio", help="Lengths vary uniformly by ±ratio."),
    dataset: str | None = typer.Option(
        None, "--dataset", help="random (default), builtin, conversations (generated chats), or a ShareGPT JSON file."
    ),
    turns: int | None = typer.Option(
        None, "--turns", help="Multi-turn: user turns per conversation, each sent after the previous answer."
    ),
    system_prompts: int | None = typer.Option(
        None, "--system-prompts", help="conversations: system prompts shared by all conversations (4)."
    ),
    system_prompt_len: int | None = typer.Option(
        None, "--system-prompt-len", help="conversations: tokens of each system prompt (512)."
    ),
    ignore_eos: bool | None = typer.Option(None, "--ignore-eos/--no-ignore-eos", help="Send ignore_eos (default on)."),
    goodput: list[str] = typer.Option(
        [], "--goodput", help="SLOs in ms: --goodput ttft:300 tpot:50 (ttft, tpot, e2el)."
    ),
    percentiles: str | None = typer.Option(None, "--percentiles", help="Percentiles to report (90,95,99)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of arrivals and prompts."),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds before a request counts as failed (600)."),
    json_file: str | None = typer.Option(None, "--json", help="Write results as JSON (vLLM's keys)."),
    html_file: str | None = typer.Option(None, "--html", help="Write a self-contained HTML report."),
    classes: list[str] = typer.Option(
        [], "--class", help="NAME:token=T|token-env=VAR|token-name=N,rate=R,concurrency=C,input-len=I,output-len=O,..."
    ),
    preflight: bool = typer.Option(True, "--preflight/--no-preflight", help="Check each class with one request first."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show live progress."),
) -> None:
    """Load an OpenAI-compatible URL (the gateway, or an engine) and report vLLM's serving metrics per class."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        extra_goodput = []
        for arg in ctx.args:
            if not _GOODPUT_ITEM.match(arg):
                raise BenchConfigError(f"unexpected argument {arg!r}")
            extra_goodput.append(arg)
        spec = load_spec(spec_file) if spec_file is not None else None
        overrides: dict[str, Any] = {
            "url": url,
            "model": model,
            "endpoint": endpoint,
            "token": token,
            "token_name": token_name,
            "rate": rate,
            "concurrency": concurrency,
            "arrival": arrival,
            "burstiness": burstiness,
            "sweep": _split_numbers(sweep, "--sweep"),
            "num_requests": num_requests,
            "duration_s": duration,
            "warmup_s": warmup,
            "input_len": input_len,
            "output_len": output_len,
            "range_ratio": range_ratio,
            "dataset": dataset,
            "turns": turns,
            "system_prompts": system_prompts,
            "system_prompt_len": system_prompt_len,
            "ignore_eos": ignore_eos,
            "goodput": parse_goodput(goodput + extra_goodput),
            "percentiles": _split_numbers(percentiles, "--percentiles"),
            "seed": seed,
            "timeout_s": timeout,
            "json_file": json_file,
            "html_file": html_file,
            "classes": [parse_class(text).model_dump() for text in classes] or None,
        }
        section = spec.benchmark if spec is not None else None
        settings = merge_settings(section, overrides)
        plan = resolve_plan(settings, spec)
    except SpecError as exc:
        err.print(f"[red]✗[/red] {exc.source}: invalid spec")
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except (BenchConfigError, ClassSpecError) as exc:
        err.print(f"[red]flotilla bench:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None

    from flotilla.bench.session import run_benchmark  # keeps `flotilla --help` light

    code = run_benchmark(plan, show_progress=progress, preflight=preflight)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command(
        context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
        epilog=_HELP_EXAMPLE,
    )(bench)
