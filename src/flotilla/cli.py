"""The `flotilla` command. Each area registers its own commands; this file only assembles them."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="flotilla",
    help="Share LLMs among many users: one spec, a priority-aware OpenAI-compatible gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules exposing `register(app: typer.Typer) -> None`.
COMMAND_MODULES = [
    "flotilla.spec.commands",  # validate, schema
    "flotilla.gateway.commands",  # gateway
    "flotilla.sim.commands",  # sim
    "flotilla.local.commands",  # up
    "flotilla.store.commands",  # tokens, usage
    "flotilla.bench.commands",  # bench
    "flotilla.chart.commands",  # render
    "flotilla.ops.commands",  # status, doctor
    "flotilla.pipeline.commands",  # ingest, pipeline import
    "flotilla.pipeline.embedserver.commands",  # embedder
]


_registered = False


def build_app() -> typer.Typer:
    global _registered
    if not _registered:
        for name in COMMAND_MODULES:
            importlib.import_module(name).register(app)
        _registered = True
    return app


def main() -> None:
    build_app()()


if __name__ == "__main__":
    main()
