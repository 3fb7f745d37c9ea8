"""`flotilla embedder`: the onnx embedding engine (what `engine: onnx` runs)."""

from __future__ import annotations

import typer


def embedder(
    port: int = typer.Option(8080, "--port", min=1, max=65535),
    host: str = typer.Option("127.0.0.1", "--host"),
    model: str = typer.Option("all-minilm-l6-v2", "--model", help="all-minilm-l6-v2"),
    served_model_name: str | None = typer.Option(None, "--served-model-name", help="Name in /v1/models; default: --model."),
    threads: int = typer.Option(1, "--threads", min=1, help="ONNX Runtime intra-op threads."),
    max_batch_size: int = typer.Option(32, "--max-batch-size", min=1, help="Texts run through the model at once."),
    max_client_batch_size: int = typer.Option(256, "--max-client-batch-size", min=1, help="Most inputs per request."),
) -> None:
    """Serve an embedding model on ONNX Runtime: TEI's /embed, /rerank (similarity), OpenAI's /v1/embeddings."""
    from aiohttp import web

    from flotilla.engines.onnx_models import INSTALL_HINT, MODELS, ModelFilesMissing, check_installed
    from flotilla.logs import configure_logging
    from flotilla.pipeline.embedserver.server import create_embedder_app

    if model not in MODELS:
        raise typer.BadParameter(f"unknown model {model!r}; known: {', '.join(MODELS)}", param_hint="--model")
    missing = check_installed(model)
    if missing:
        typer.echo(f"error: the onnx engine needs {', '.join(missing)}: {INSTALL_HINT}", err=True)
        raise typer.Exit(1)
    configure_logging("info")
    try:
        app = create_embedder_app(model, served_model_name or model, threads, max_batch_size, max_client_batch_size)
    except ModelFilesMissing as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    web.run_app(app, host=host, port=port, access_log=None, print=None)


def register(app: typer.Typer) -> None:
    app.command()(embedder)
