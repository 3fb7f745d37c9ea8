"""`flotilla up`: the whole stack on this machine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console

from flotilla.spec.commands import load_spec_or_exit

err = Console(stderr=True)


def up(
    spec_file: Path = typer.Argument(..., help="The flotilla.yaml to run."),
    run_dir: Path | None = typer.Option(
        None, "--run-dir", help="Folder for logs and state.json (default: .flotilla/run-<timestamp>)."
    ),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Gateway port (default: gateway.port)."),
    grace: float = typer.Option(10.0, "--grace", min=0, help="Seconds a process gets to stop before SIGKILL."),
    startup_timeout: float = typer.Option(
        900.0, "--startup-timeout", min=1, help="Longest wait for the engines (then the gateway) to be healthy."
    ),
) -> None:
    """Start every model's replicas and the gateway here; Ctrl-C stops them all."""
    # Imported here: aiohttp and the engines are not needed by the other commands.
    from flotilla.local.plan import PlanError, build_plan
    from flotilla.local.rundir import default_run_dir
    from flotilla.local.runner import Stack, UpSettings, run_stack

    spec = load_spec_or_exit(spec_file)
    folder = (run_dir or default_run_dir()).resolve()
    try:
        plan = build_plan(spec, spec_file, folder, gateway_port=port)
    except PlanError as exc:
        err.print(f"[red]✗[/red] flotilla up cannot start {spec_file}; nothing was started:")
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    folder.mkdir(parents=True, exist_ok=True)
    settings = UpSettings(grace_s=grace, startup_timeout_s=startup_timeout)
    stack = Stack(spec, spec_file, plan, folder, settings, Console())
    raise typer.Exit(asyncio.run(run_stack(stack)))


def register(app: typer.Typer) -> None:
    app.command()(up)
