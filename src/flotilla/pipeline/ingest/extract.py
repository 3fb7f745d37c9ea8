"""A document's text, by its type: plain text, Markdown, HTML (BeautifulSoup) or PDF (pypdf)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import PurePosixPath

TEXT_SUFFIXES = {".txt", ".text", ".log", ".rst", ".csv", ".json", ".yaml", ".yml"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED = sorted(TEXT_SUFFIXES | MARKDOWN_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES)


class UnsupportedDocument(ValueError):
    """A document whose type or encoding cannot be read; the message says why."""


@dataclass(frozen=True)
class Extracted:
    text: str
    format: str  # text | markdown | html | pdf: markdown keeps its structure for the splitter


def document_format(name: str, content_type: str | None) -> str:
    suffix = PurePosixPath(name.split("?", 1)[0]).suffix.lower()
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if suffix in PDF_SUFFIXES or ctype == "application/pdf":
        return "pdf"
    if suffix in HTML_SUFFIXES or ctype in ("text/html", "application/xhtml+xml"):
        return "html"
    if suffix in MARKDOWN_SUFFIXES or ctype == "text/markdown":
        return "markdown"
    if suffix in TEXT_SUFFIXES or ctype.startswith("text/") or (not suffix and ctype in ("", "application/octet-stream")):
        return "text"
    raise UnsupportedDocument(f"{name}: unsupported document type ({suffix or ctype or 'unknown'}); supported: {', '.join(SUPPORTED)}")


def _decode(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnsupportedDocument(f"{name}: not UTF-8 text (byte {exc.start})") from None


def extract(name: str, data: bytes, content_type: str | None = None) -> Extracted:
    """The text of a document (CPU-bound for PDFs: call from a worker thread)."""
    kind = document_format(name, content_type)
    if kind == "pdf":
        return Extracted(_pdf_text(name, data), "text")
    text = _decode(name, data)
    if kind == "html":
        return Extracted(_html_text(text), "text")
    return Extracted(text, kind)


def _html_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def _pdf_text(name: str, data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise UnsupportedDocument(f"{name}: not a readable PDF ({exc})") from None
    return "\n\n".join(p.strip() for p in pages if p.strip())
