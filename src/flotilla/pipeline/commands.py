"""`flotilla ingest PIPELINE FILES...` and `flotilla pipeline import FILE`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer
import yaml
from rich.console import Console

err = Console(stderr=True)
pipeline_app = typer.Typer(help="Pipelines: import the seed's YAML format.", no_args_is_help=True)


def _gateway_url(spec) -> str:
    host = spec.gateway.host
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{spec.gateway.port}"


def ingest(
    pipeline: str = typer.Argument(..., help="The pipeline whose store gets the documents."),
    files: list[Path] = typer.Argument(None, help="Files or folders (their .txt .md .html .pdf ... files)."),
    link: list[str] = typer.Option([], "--link", help="A URL the gateway fetches and ingests (repeat)."),
    spec_file: Path | None = typer.Option(None, "--spec", help="Read the gateway's address and --token-name from this spec."),
    url: str | None = typer.Option(None, "--url", help="Gateway base URL (default: the spec's, else http://127.0.0.1:8000)."),
    token_name: str | None = typer.Option(None, "--token-name", help="Use this token of the spec's gateway.tokens."),
    token_env: str = typer.Option("FLOTILLA_TOKEN", "--token-env", help="Environment variable holding the bearer token."),
    chunk_size: int | None = typer.Option(None, "--chunk-size", min=50, help="Characters per chunk (default: the pipeline's)."),
    chunk_overlap: int | None = typer.Option(None, "--chunk-overlap", min=0, help="Characters shared by neighbouring chunks."),
    retriever: str | None = typer.Option(None, "--retriever", help="Retriever node, when the pipeline has several."),
) -> None:
    """Ingest documents into a pipeline's vector store through the gateway (POST /v1/dataprep/ingest)."""
    from flotilla.pipeline.upload import UploadFailed, find_documents, upload_documents
    from flotilla.spec.commands import load_spec_or_exit

    spec = load_spec_or_exit(spec_file) if spec_file else None
    base_url = url or (_gateway_url(spec) if spec else "http://127.0.0.1:8000")
    if token_name:
        if spec is None:
            raise typer.BadParameter("--token-name needs --spec", param_hint="--token-name")
        matches = [t.token for t in spec.gateway.tokens if t.name == token_name]
        if not matches:
            raise typer.BadParameter(f"no token named {token_name!r} in {spec_file}", param_hint="--token-name")
        token = matches[0]
    else:
        token = os.environ.get(token_env, "")
        if not token:
            err.print(f"error: set ${token_env} to a bearer token allowed to ingest, or use --spec with --token-name")
            raise typer.Exit(2)
    try:
        documents = find_documents(list(files or []))
        if not documents and not link:
            err.print("error: nothing to ingest (no supported files found, no --link)")
            raise typer.Exit(2)
        outcomes = asyncio.run(upload_documents(
            base_url, token, pipeline, documents, links=link, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
            retriever=retriever,
        ))
    except UploadFailed as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    for outcome in outcomes:
        typer.echo(f"{outcome['status']:>9}  {outcome['chunks']:>5} chunks  {outcome['document']}")
    ingested = sum(o["chunks"] for o in outcomes if o["status"] == "ingested")
    typer.echo(f"{len(outcomes)} document(s) into pipeline {pipeline}: {ingested} chunk(s) embedded")


@pipeline_app.command("import")
def import_command(
    seed_file: Path = typer.Argument(..., help="A YAML with opea_micro_services and opea_mega_service."),
    name: str | None = typer.Option(None, "--name", help="Pipeline name (default: from the file name)."),
    host: str = typer.Option("localhost", "--host", help="Host of services that name none."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the fragment here instead of stdout."),
) -> None:
    """Turn the seed's unified YAML into Flotilla `models:` and `pipelines:` entries (checked)."""
    import re

    from pydantic import ValidationError

    from flotilla.pipeline.seed_import import ImportProblem, import_seed_text
    from flotilla.spec.loader import format_validation_error
    from flotilla.spec.models import ModelSpec
    from flotilla.spec.pipelines import PipelineSpec

    pipeline_name = name or re.sub(r"[^a-z0-9-]+", "-", seed_file.stem.lower()).strip("-") or "pipeline"
    try:
        fragment = import_seed_text(seed_file.read_text(), pipeline_name, host)
        for model in fragment["models"]:
            ModelSpec.model_validate(model)
        PipelineSpec.model_validate(fragment["pipelines"][0])
    except OSError as exc:
        err.print(f"error: cannot read {seed_file}: {exc.strerror}")
        raise typer.Exit(1) from None
    except ImportProblem as exc:
        err.print(f"error: {seed_file}: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    except ValidationError as exc:
        err.print(f"error: {seed_file} imports as an invalid pipeline:", markup=False, soft_wrap=True)
        prefix = "pipelines[0]." if exc.title == "PipelineSpec" else "models[]."
        for problem in format_validation_error(exc, fragment):
            err.print(f"  - {prefix}{problem}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    text = yaml.safe_dump(fragment, sort_keys=False)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        err.print(f"wrote {output}: {len(fragment['models'])} model(s), pipeline {pipeline_name!r}")


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.add_typer(pipeline_app, name="pipeline")
