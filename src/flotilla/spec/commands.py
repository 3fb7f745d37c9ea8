"""`flotilla validate` and `flotilla schema`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from flotilla.spec.loader import SpecError, load_spec
from flotilla.spec.root import FlotillaSpec
from flotilla.spec.schema import spec_json_schema_text

err = Console(stderr=True)


def load_spec_or_exit(spec_file: Path) -> FlotillaSpec:
    """Load a spec for a command; on problems print each with its field path and exit 1."""
    try:
        return load_spec(spec_file)
    except SpecError as exc:
        err.print(f"[red]✗[/red] {exc.source}: invalid spec")
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(1) from None


def validate(spec_file: Path = typer.Argument(..., help="The flotilla.yaml to check.")) -> None:
    """Check a spec file; print every problem with its field path."""
    spec = load_spec_or_exit(spec_file)
    models = ", ".join(f"{m.name} ({m.engine} ×{m.replica_count})" for m in spec.models)
    pipelines = f"; {len(spec.pipelines)} pipeline(s): {', '.join(p.name for p in spec.pipelines)}" if spec.pipelines else ""
    typer.echo(f"✓ {spec_file}: {len(spec.models)} model(s): {models}; {len(spec.gateway.tokens)} token(s){pipelines}")


def schema(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print the JSON Schema of the spec."""
    text = spec_json_schema_text()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(schema)
