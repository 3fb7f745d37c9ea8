"""Reading an ingest request (multipart/form-data, as the seed family's dataprep API takes it).

Fields: `files` (repeatable file parts), `link_list` (a JSON array of URLs, or repeated `links`
fields), `chunk_size`, `chunk_overlap`, `pipeline`, `retriever`. The body is read as a stream with
per-file and per-request caps, so no request can grow memory past them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

import orjson

from flotilla.httpserver import Request
from flotilla.pipeline.errors import PipelineError
from flotilla.pipeline.ingest.service import Upload

_FIELD_LIMIT = 64 * 1024  # any non-file field
FIELDS = ("files", "link_list", "links", "chunk_size", "chunk_overlap", "pipeline", "retriever")


def _bad(message: str, param: str | None = None) -> PipelineError:
    return PipelineError(400, message, "invalid_request", param, type="invalid_request_error")


@dataclass
class IngestForm:
    pipeline: str | None = None
    retriever: str | None = None
    files: list[Upload] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    chunk_size: int | None = None
    chunk_overlap: int | None = None


async def _read_part(part, limit: int, name: str) -> bytes:
    data = bytearray()
    while True:
        piece = await part.read_chunk(65536)
        if not piece:
            return bytes(data)
        data += piece
        if len(data) > limit:
            raise PipelineError(413, f"{name} is larger than {limit} bytes.", "document_too_large", "files",
                                type="invalid_request_error")


def _int_field(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _bad(f"'{name}' must be an integer (got {text[:40]!r}).", name) from None


async def read_ingest_form(request: Request, max_file_bytes: int, max_items: int) -> IngestForm:
    if not request.content_type.startswith("multipart/"):
        raise _bad("Send documents as multipart/form-data (fields: files, link_list, chunk_size, chunk_overlap, pipeline).")
    form = IngestForm()
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            break
        name = part.name or ""
        if part.filename is not None or name == "files":
            if len(form.files) + len(form.links) >= max_items:
                raise _bad(f"At most {max_items} files and links per request.", "files")
            # Clients may percent-encode file names (aiohttp does, for names with '/'); RFC 7578 allows it.
            filename = unquote(part.filename) if part.filename else f"document-{len(form.files)}"
            data = await _read_part(part, max_file_bytes, filename)
            form.files.append(Upload(filename, data, part.headers.get("Content-Type")))
            continue
        text = (await _read_part(part, _FIELD_LIMIT, name)).decode("utf-8", "replace").strip()
        if name == "link_list":
            try:
                links = orjson.loads(text) if text else []
            except orjson.JSONDecodeError:
                links = None
            if not isinstance(links, list) or not all(isinstance(u, str) for u in links):
                raise _bad("'link_list' must be a JSON array of URLs.", "link_list")
            form.links += links
        elif name == "links":
            form.links.append(text)
        elif name == "chunk_size":
            form.chunk_size = _int_field(text, name)
        elif name == "chunk_overlap":
            form.chunk_overlap = _int_field(text, name)
        elif name == "pipeline":
            form.pipeline = text or None
        elif name == "retriever":
            form.retriever = text or None
        else:
            raise _bad(f"Unknown field {name!r}; fields: {', '.join(FIELDS)}.", name)
        if len(form.files) + len(form.links) > max_items:
            raise _bad(f"At most {max_items} files and links per request.", "link_list")
    if not form.files and not form.links:
        raise _bad("Nothing to ingest: send `files` or `link_list`.", "files")
    return form
