"""Where the CLI finds the database: --database, else the spec's gateway.database, else $FLOTILLA_DATABASE_URL."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from flotilla.spec.gateway import GatewaySpec
from flotilla.spec.loader import SpecError, substitute_env
from flotilla.store.errors import DatabaseURLError

DATABASE_URL_ENV = "FLOTILLA_DATABASE_URL"


def database_url_from_spec(spec_file: Path, env: Mapping[str, str]) -> str:
    """The spec's gateway.database (its default when unset), reading only that key.

    The rest of the spec is not validated, so that managing tokens does not need every token
    secret of the spec in the environment.
    """
    try:
        data = yaml.safe_load(spec_file.read_text())
    except OSError as exc:
        raise DatabaseURLError(f"{spec_file}: cannot read the spec: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise DatabaseURLError(f"{spec_file}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    gateway = data.get("gateway") if isinstance(data, dict) else None
    if gateway is None:
        gateway = {}
    if not isinstance(gateway, dict):
        raise DatabaseURLError(f"{spec_file}: `gateway` must be a mapping")
    url = gateway.get("database", GatewaySpec.model_fields["database"].default)
    if not isinstance(url, str):
        raise DatabaseURLError(f"{spec_file}: gateway.database must be a URL string, got {type(url).__name__}")
    try:
        return substitute_env(url, env, ("gateway", "database"))
    except SpecError as exc:
        raise DatabaseURLError(f"{spec_file}: " + "; ".join(exc.problems)) from None


def resolve_database_url(database: str | None, spec_file: Path | None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if database:
        return database
    if spec_file is not None:
        return database_url_from_spec(spec_file, env)
    if env.get(DATABASE_URL_ENV):
        return env[DATABASE_URL_ENV]
    raise DatabaseURLError(
        f"no database given: pass --database URL or --spec flotilla.yaml, or set ${DATABASE_URL_ENV}"
    )
