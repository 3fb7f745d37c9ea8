"""`flotilla render SPEC -o DIR`: the chart's manifests for a spec, one file each (GitOps, kubectl apply)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from flotilla.chart.helm import HelmError, HelmNotFound
from flotilla.chart.paths import ChartNotFound
from flotilla.spec.loader import SpecError

err = Console(stderr=True)


def render(
    spec_file: Path = typer.Argument(..., help="The flotilla.yaml to deploy (the chart's values file)."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory to write one YAML file per manifest into."),
    release: str = typer.Option("flotilla", "--release", "-r", help="Helm release name (prefixes object names)."),
    namespace: str = typer.Option("default", "--namespace", "-n", help="Namespace of the objects."),
    chart: Path | None = typer.Option(None, "--chart", help="Chart directory (default: the repository's charts/flotilla)."),
    set_values: list[str] = typer.Option([], "--set", help="Helm --set override, e.g. gateway.replicas=2 (repeat)."),
    clean: bool = typer.Option(False, "--clean", help="Delete the .yaml files already in the output directory first."),
) -> None:
    """Render the Helm chart for a spec into plain manifests (runs `helm template`)."""
    from flotilla.chart.paths import chart_dir
    from flotilla.chart.render import helm_template, render_to_dir, split_manifests, validate_for_chart

    try:
        text = spec_file.read_text()
    except OSError as exc:
        err.print(f"error: cannot read {spec_file}: {exc.strerror}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    try:
        validate_for_chart(text, str(spec_file))
        extra = [arg for value in set_values for arg in ("--set", value)]
        rendered = helm_template(text, release=release, namespace=namespace, chart=chart_dir(chart), extra_args=extra)
        written = render_to_dir(split_manifests(rendered), output, clean)
    except SpecError as exc:
        err.print(f"✗ {exc.source}: invalid spec", markup=False, highlight=False)
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except HelmError as exc:
        err.print(f"✗ helm could not render {spec_file}:\n{exc.stderr}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except (HelmNotFound, ChartNotFound, FileExistsError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    typer.echo(f"✓ wrote {len(written)} manifests to {output} (release {release}, namespace {namespace})")


def register(app: typer.Typer) -> None:
    app.command()(render)
