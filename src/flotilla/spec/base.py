"""The base class of every spec section: camelCase keys, unknown keys rejected."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    """Spec sections are written in camelCase (Helm convention) and reject typos."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )


class OpenSpecModel(SpecModel):
    """A section that passes unknown keys through (e.g. raw Kubernetes fragments)."""

    model_config = ConfigDict(extra="allow")
