"""`flotilla gateway SPEC`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from flotilla.gateway.endpoints import parse_endpoint_flags
from flotilla.spec.commands import load_spec_or_exit

err = Console(stderr=True)


def gateway(
    spec_file: Path = typer.Argument(..., help="The flotilla.yaml to serve."),
    host: str | None = typer.Option(None, help="Listen address (default: gateway.host)."),
    port: int | None = typer.Option(None, help="Listen port (default: gateway.port)."),
    endpoint: list[str] = typer.Option(
        [], "--endpoint", "-e",
        help="MODEL=URL of one replica (repeat), or MODEL=dns+http://NAME:PORT for all addresses of NAME.",
    ),
) -> None:
    """Run the OpenAI-compatible gateway for a spec's models."""
    from flotilla.gateway.server import GatewayConfigError, resolve_endpoints, run_gateway

    spec = load_spec_or_exit(spec_file)
    try:
        endpoints = parse_endpoint_flags(endpoint)
        resolve_endpoints(spec, endpoints)
    except (ValueError, GatewayConfigError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    run_gateway(spec, endpoints, host, port)


def register(app: typer.Typer) -> None:
    app.command()(gateway)
