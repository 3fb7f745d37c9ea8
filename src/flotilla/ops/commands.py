"""`flotilla status [URL]` and `flotilla doctor SPEC`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from flotilla.spec.commands import load_spec_or_exit

out = Console()
err = Console(stderr=True)


def status(
    url: str | None = typer.Argument(None, help="The gateway's URL (default: http://127.0.0.1:PORT of --spec, else :8000)."),
    spec_file: Path | None = typer.Option(None, "--spec", help="Take host and port from this spec's gateway."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until Ctrl-C."),
    interval: float = typer.Option(2.0, "--interval", min=0.1, help="Seconds between refreshes with --watch."),
    as_json: bool = typer.Option(False, "--json", help="Print the reading as JSON instead of tables."),
    count: int | None = typer.Option(None, "--count", hidden=True, help="Stop --watch after this many readings."),
) -> None:
    """Show a running gateway: models, replicas, queues by priority, recent requests, errors and tokens."""
    from flotilla.ops.status import GatewayUnreachable, read_status, render

    if url is None:
        if spec_file is not None:
            from flotilla.local.ports import connect_host

            gateway = load_spec_or_exit(spec_file).gateway
            url = f"http://{connect_host(gateway.host)}:{gateway.port}"
        else:
            url = "http://127.0.0.1:8000"

    def reading():
        try:
            return read_status(url)
        except GatewayUnreachable as exc:
            err.print(f"[red]✗[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None

    if as_json:
        typer.echo(json.dumps(reading().as_dict(), indent=2))
        return
    if not watch:
        out.print(render(reading()))
        return
    readings = 0
    with Live(render(reading()), console=out, auto_refresh=False) as live:
        try:
            while count is None or (readings := readings + 1) < count:
                time.sleep(interval)
                live.update(render(reading()), refresh=True)
        except KeyboardInterrupt:
            pass


def doctor(
    spec_file: Path = typer.Argument(..., help="The flotilla.yaml to check."),
    for_: str = typer.Option("all", "--for", help="up (this machine), render (Kubernetes) or all."),
    port: int | None = typer.Option(None, "--port", help="The gateway port `flotilla up --port` would use."),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check what `flotilla up` and `flotilla render` need for a spec, and say what to do about each problem."""
    from flotilla.ops.doctor import run_checks

    if for_ not in ("all", "up", "render"):
        err.print(f"--for: {for_!r} is not one of all, up, render")
        raise typer.Exit(2)
    spec = load_spec_or_exit(spec_file)
    checks = run_checks(spec, for_, port)  # type: ignore[arg-type]
    problems = [c for c in checks if not c.ok]
    if as_json:
        typer.echo(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        table = Table(title=f"flotilla doctor {spec_file}", title_justify="left")
        for column in ("", "check", "found", "what to do"):
            table.add_column(column, overflow="fold")
        for c in checks:
            mark = Text("✓", style="green") if c.ok else Text("✗", style="red")
            table.add_row(mark, c.name, Text(c.detail), Text(c.fix))
        out.print(table)
        summary = f"{len(problems)} problem(s)" if problems else "everything a start needs is in place"
        out.print(Text(summary, style="red" if problems else "green"))
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(doctor)
