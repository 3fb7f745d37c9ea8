"""python -m flotilla.catalog [--check]: write (or check) the generated portal files."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from flotilla.catalog.backstage import CATALOG_FILE, OPENAPI_FILE, catalog_text, openapi_text
from flotilla.catalog.node import REPO
from flotilla.catalog.typescript import values_typescript

TYPES_FILE = "types/flotilla-values.d.ts"
GENERATORS: dict[str, Callable[[], str]] = {
    TYPES_FILE: values_typescript,
    CATALOG_FILE: catalog_text,
    OPENAPI_FILE: openapi_text,
}


def stale_files(root: Path = REPO) -> list[str]:
    return [name for name, make in GENERATORS.items() if not (root / name).is_file() or (root / name).read_text() != make()]


def write_all(root: Path = REPO) -> list[Path]:
    written = []
    for name, make in GENERATORS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        stale = stale_files()
        for name in stale:
            print(f"stale: {name} (run: python -m flotilla.catalog)", file=sys.stderr)
        return 1 if stale else 0
    if argv[1:]:
        print("usage: python -m flotilla.catalog [--check]", file=sys.stderr)
        return 2
    for path in write_all():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
