"""Parse `--class NAME:key=value,...` into a traffic class, with errors that say what is wrong.

Values are never echoed back for token keys: a command line's secrets must not reach logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import ValidationError

from flotilla.spec.benchmark import TrafficClassSpec

# Flag key -> spec field. Kebab-case like the other flags.
CLASS_KEYS: dict[str, str] = {
    "token": "token",
    "token-env": "token",  # the token is read from this environment variable (keeps it out of `ps`)
    "token-name": "token_name",
    "model": "model",
    "rate": "rate",
    "concurrency": "concurrency",
    "burstiness": "burstiness",
    "num-requests": "num_requests",
    "input-len": "input_len",
    "output-len": "output_len",
    "range-ratio": "range_ratio",
    "dataset": "dataset",
    "turns": "turns",
}
_SECRET_KEYS = {"token"}
EXAMPLE = "--class students:token-env=STUDENT_TOKEN,rate=20,input-len=512,output-len=128"


class ClassSpecError(ValueError):
    """A --class value that cannot be used."""


def parse_class(text: str, env: Mapping[str, str] | None = None) -> TrafficClassSpec:
    environ = os.environ if env is None else env
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise ClassSpecError(f"--class needs a name before ':', e.g. {EXAMPLE}")
    where = f"--class {name}"
    fields: dict[str, object] = {"name": name}
    for item in rest.split(",") if sep and rest.strip() else []:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise ClassSpecError(f"{where}: {key!r} is not key=value (e.g. rate=2)")
        if key not in CLASS_KEYS:
            known = ", ".join(CLASS_KEYS)
            raise ClassSpecError(f"{where}: unknown key {key!r} (known: {known})")
        field = CLASS_KEYS[key]
        if field in fields:
            raise ClassSpecError(f"{where}: {key} is given twice")
        value = value.strip()
        if not value:
            raise ClassSpecError(f"{where}: {key} has no value")
        if key == "token-env":
            if value not in environ:
                raise ClassSpecError(f"{where}: environment variable {value} (token-env) is not set")
            value = environ[value]
        fields[field] = value
    try:
        return TrafficClassSpec.model_validate(fields)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "name"
            flag_key = next((k for k, f in CLASS_KEYS.items() if f == field and k != "token-env"), field)
            message = error["msg"].removeprefix("Value error, ")
            if flag_key not in _SECRET_KEYS and field != "name" and "input" in error:
                message += f" (got {error['input']!r})"
            problems.append(f"{flag_key}: {message}" if field != "name" else message)
        raise ClassSpecError(f"{where}: " + "; ".join(problems)) from None
