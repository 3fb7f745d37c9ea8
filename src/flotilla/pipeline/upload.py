"""Sending documents to a gateway's data prep API: `flotilla ingest` and `flotilla up` use it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from flotilla.pipeline.ingest.extract import SUPPORTED

BATCH_FILES = 16  # documents per request (each request is bounded by the pipeline's maxFiles)


@dataclass(frozen=True)
class LocalDocument:
    path: Path
    name: str  # the document's name in the store


class UploadFailed(Exception):
    pass


def find_documents(paths: list[Path]) -> list[LocalDocument]:
    """Files as given, and the supported files inside folders (recursively).

    A file is named by its file name, a file found in folder F by `F/<path inside F>`, wherever F is:
    `flotilla ingest rag examples/rag-docs` and a spec's `sources: [rag-docs]` name the same documents
    alike, so ingesting them again replaces them (or skips them, unchanged) instead of adding copies.
    """
    found: list[LocalDocument] = []
    for path in paths:
        if not path.exists():
            raise UploadFailed(f"{path}: no such file or folder")
        if path.is_dir():
            folder = path.resolve()
            for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED):
                found.append(LocalDocument(file, f"{folder.name}/{file.relative_to(folder).as_posix()}"))
        else:
            found.append(LocalDocument(path, path.name))
    return found


async def upload_documents(
    url: str, token: str, pipeline: str, documents: list[LocalDocument], *, links: list[str] | None = None,
    chunk_size: int | None = None, chunk_overlap: int | None = None, retriever: str | None = None,
    timeout_s: float = 600.0,
) -> list[dict[str, Any]]:
    """POST the documents in batches; the outcome of each ({document, status, chunks})."""
    outcomes: list[dict[str, Any]] = []
    batches = [documents[i : i + BATCH_FILES] for i in range(0, len(documents), BATCH_FILES)] or [[]]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        for index, batch in enumerate(batches):
            form = aiohttp.FormData(default_to_multipart=True)  # links alone would go urlencoded
            form.add_field("pipeline", pipeline)
            if retriever:
                form.add_field("retriever", retriever)
            if chunk_size is not None:
                form.add_field("chunk_size", str(chunk_size))
            if chunk_overlap is not None:
                form.add_field("chunk_overlap", str(chunk_overlap))
            if links and index == 0:
                form.add_field("link_list", orjson.dumps(links).decode())
            for doc in batch:
                form.add_field("files", doc.path.read_bytes(), filename=doc.name)
            if not batch and not (links and index == 0):
                continue
            try:
                async with session.post(
                    url.rstrip("/") + "/v1/dataprep/ingest", data=form, headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    body = await response.read()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise UploadFailed(f"cannot reach the gateway at {url}: {exc or type(exc).__name__}") from None
            try:
                answer = orjson.loads(body)
            except orjson.JSONDecodeError:
                answer = {}
            if response.status != 200:
                message = answer.get("error", {}).get("message") if isinstance(answer, dict) else None
                raise UploadFailed(f"HTTP {response.status}: {message or body[:300].decode('utf-8', 'replace')}")
            outcomes += answer.get("documents", [])
    return outcomes
