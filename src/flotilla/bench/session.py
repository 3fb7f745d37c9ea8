"""A whole `flotilla bench` run: preflight, each sweep step with its live view, then the reports."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import uvloop
from rich.console import Console

from flotilla.bench.config import BenchPlan
from flotilla.bench.datasets import PromptSample
from flotilla.bench.metrics import RequestRecord
from flotilla.bench.progress import show_progress
from flotilla.bench.report_console import print_report
from flotilla.bench.report_html import write_html
from flotilla.bench.report_json import write_json
from flotilla.bench.request import RequestTarget, perform, request_body, request_headers
from flotilla.bench.runner import StepResult, StepRunner
from flotilla.transport import ConnectionPool

PREFLIGHT_TIMEOUT_S = 120.0


async def preflight(plan: BenchPlan) -> list[str]:
    """One short request per class: wrong URLs, tokens and model names fail here, clearly."""
    pool = ConnectionPool(plan.base_url)
    target = RequestTarget(pool, plan.path, min(plan.timeout_s, PREFLIGHT_TIMEOUT_S))
    problems = []
    try:
        for cls in plan.classes:
            sample = PromptSample("Say hello.", 3, 2)
            body = request_body(plan.endpoint, cls.model, sample, plan.ignore_eos)
            record = RequestRecord(cls.name, scheduled=0.0)
            await perform(
                target,
                pool.build_request("POST", plan.path, request_headers(cls.token), body),
                record,
                time.perf_counter(),
            )
            if not record.success:
                detail = f"HTTP {record.status}" if record.status.isdigit() else record.status
                problems.append(
                    f"class {cls.name} ({cls.model} at {plan.base_url}{plan.path}): {detail}: {record.error}"
                )
    finally:
        pool.close()
    return problems


def _step_title(rate: float | None, index: int, total: int) -> str:
    if rate is None:
        return "flotilla bench"
    return f"flotilla bench — step {index + 1}/{total}: {rate:g} req/s"


async def _run(plan: BenchPlan, show: bool, check_first: bool, out: Console, err: Console) -> int:
    if check_first:
        problems = await preflight(plan)
        if problems:
            err.print("[red]flotilla bench: the preflight request failed, nothing was measured:[/red]")
            for problem in problems:
                err.print(f"  - {problem}", markup=False, highlight=False)
            return 2
    loop = asyncio.get_running_loop()
    steps: list[StepResult] = []
    plan_steps = plan.steps()
    for index, (rate, classes) in enumerate(plan_steps):
        runner = StepRunner(plan, classes, rate, _step_title(rate, index, len(plan_steps)))

        def interrupt(runner: StepRunner = runner) -> None:
            err.print("[yellow]stopping: no new requests; waiting for those in flight (Ctrl-C again to quit)[/yellow]")
            runner.stop()
            loop.remove_signal_handler(signal.SIGINT)  # a second Ctrl-C ends the process

        with contextlib.suppress(RuntimeError, NotImplementedError, ValueError):  # not the main thread
            loop.add_signal_handler(signal.SIGINT, interrupt)
        done = asyncio.Event()
        display = asyncio.ensure_future(show_progress(runner.progress, err, done)) if show else None
        try:
            steps.append(await runner.run())
        except RuntimeError as exc:
            err.print(f"[red]flotilla bench:[/red] {exc}")
            return 1
        finally:
            done.set()
            if display is not None:
                await display
            with contextlib.suppress(RuntimeError, NotImplementedError, ValueError):
                loop.remove_signal_handler(signal.SIGINT)
        if runner.progress.stopping:
            break
    print_report(out, plan, steps)
    if plan.json_file:
        out.print(f"results: {write_json(plan.json_file, plan, steps)}")
    if plan.html_file:
        out.print(f"report: {write_html(plan.html_file, plan, steps)}")
    if all(step.overall["completed"] == 0 for step in steps):
        err.print("[red]flotilla bench: every request failed[/red] (see Errors by status)")
        return 1
    return 0


def run_benchmark(plan: BenchPlan, show_progress: bool = True, preflight: bool = True) -> int:
    """Run `plan` on a uvloop event loop; returns the process exit code."""
    out, err = Console(), Console(stderr=True, soft_wrap=True)
    if not out.is_terminal:
        out = Console(width=160)  # logs (a Kubernetes Job's, a file): room for one column per class
    try:
        return uvloop.run(_run(plan, show_progress, preflight, out, err))
    except KeyboardInterrupt:
        err.print("[yellow]flotilla bench: interrupted; nothing reported[/yellow]")
        return 130
