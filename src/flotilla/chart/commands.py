"""`flotilla render SPEC -o OUT [--format chart|values|compose|gmc]`: one spec, every target.

chart: the Helm chart's manifests, one file each (GitOps, kubectl apply); values: the spec as the
chart's values file (for a seed-format file, the deployable spec it becomes); compose: a docker
compose project for one Docker host; gmc: OPEA GMConnectors with the workloads of their steps.
SPEC is a Flotilla spec or the seed design's unified YAML (opea_micro_services + opea_mega_service).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
import yaml
from rich.console import Console

from flotilla.chart.helm import HelmError, HelmNotFound
from flotilla.chart.paths import ChartNotFound
from flotilla.spec.loader import SpecError

err = Console(stderr=True)


class Format(str, Enum):
    chart = "chart"
    values = "values"
    compose = "compose"
    gmc = "gmc"


def _write_files(out_dir: Path, files: dict[str, str], clean: bool) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = [out_dir / name for name in files if (out_dir / name).exists()]
    if existing and not clean:
        raise FileExistsError(f"{out_dir} already holds {', '.join(p.name for p in existing)}; pass --clean to replace them")
    written = []
    for name, text in files.items():
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def render(
    spec_file: Path = typer.Argument(..., help="A flotilla.yaml, or the seed's unified YAML (opea_micro_services)."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory to write into (a file for --format values)."),
    format: Format = typer.Option(Format.chart, "--format", "-f", help="chart | values | compose | gmc."),
    release: str = typer.Option("flotilla", "--release", "-r", help="Helm release name (prefixes object names)."),
    namespace: str = typer.Option("default", "--namespace", "-n", help="Namespace of the objects."),
    chart: Path | None = typer.Option(None, "--chart", help="Chart directory (default: the repository's charts/flotilla)."),
    set_values: list[str] = typer.Option([], "--set", help="Helm --set override, e.g. gateway.replicas=2 (repeat; chart, gmc)."),
    clean: bool = typer.Option(False, "--clean", help="Replace the files already in the output directory."),
) -> None:
    """Render a spec for a target: the Helm chart's manifests, a values file, docker compose, or OPEA GMC."""
    from flotilla.chart.spec_source import read_spec_source, seed_file

    try:
        extra = [arg for value in set_values for arg in ("--set", value)]
        if format is Format.chart and not seed_file(spec_file):
            # The chart resolves the spec's references itself (from Secrets): checked as the chart does.
            count = _render_chart(_read(spec_file), output, release, namespace, chart, extra, clean)
            typer.echo(f"✓ wrote {count} manifests to {output} (release {release}, namespace {namespace})")
            return
        source = read_spec_source(spec_file)
        values_text = yaml.safe_dump(source.data, sort_keys=False) if source.from_seed else _read(spec_file)
        if format is Format.chart:
            count = _render_chart(values_text, output, release, namespace, chart, extra, clean)
            typer.echo(f"✓ wrote {count} manifests to {output} (release {release}, namespace {namespace})")
        elif format is Format.values:
            if output.exists() and not clean:
                raise FileExistsError(f"{output} exists; pass --clean to replace it")
            output.write_text(_values_header(source) + values_text)
            typer.echo(f"✓ wrote {output}: helm install NAME charts/flotilla -f {output}")
        elif format is Format.compose:
            from flotilla.chart.compose import compose_project

            project = compose_project(source, output)
            _warn(project.warnings)
            written = _write_files(output, project.files(), clean)
            typer.echo(f"✓ wrote {', '.join(p.name for p in written)} to {output}: "
                       f"cp {output}/.env.example {output}/.env, fill it in, docker compose up -d")
        else:
            from flotilla.chart.gmc import GMC_STREAM_WARNING, gmc_manifests

            manifests, warnings = gmc_manifests(source, release=release, namespace=namespace, chart=chart, extra_args=extra)
            _warn([GMC_STREAM_WARNING, *warnings])
            from flotilla.chart.render import render_to_dir

            written = render_to_dir(manifests, output, clean)
            typer.echo(f"✓ wrote {len(written)} manifests to {output} (namespace {namespace})")
    except SpecError as exc:
        err.print(f"✗ {exc.source}: invalid spec", markup=False, highlight=False)
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except HelmError as exc:
        err.print(f"✗ helm could not render {spec_file}:\n{exc.stderr}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except (HelmNotFound, ChartNotFound, FileExistsError, ValueError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise SpecError(str(path), [f"cannot read the file: {exc.strerror}"]) from None


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)


def _values_header(source) -> str:
    if not source.from_seed:
        return ""
    return (f"# The deployable spec of {source.source} (flotilla render --format values): each service of the\n"
            "# seed file runs as a Flotilla building block; edit models and the token, then helm install.\n")


def _render_chart(values_text: str, output: Path, release: str, namespace: str, chart: Path | None,
                  extra: list[str], clean: bool) -> int:
    from flotilla.chart.paths import chart_dir
    from flotilla.chart.render import helm_template, render_to_dir, split_manifests, validate_for_chart

    validate_for_chart(values_text, "spec")  # the spec's own rules, references left to the pods
    rendered = helm_template(values_text, release=release, namespace=namespace, chart=chart_dir(chart), extra_args=extra)
    return len(render_to_dir(split_manifests(rendered), output, clean))


def register(app: typer.Typer) -> None:
    app.command()(render)
