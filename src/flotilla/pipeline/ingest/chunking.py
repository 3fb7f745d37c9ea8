"""Cutting text into overlapping chunks along its structure (semantic-text-splitter: paragraphs,
sentences and, for Markdown, headings and blocks), at most `size` characters each."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=32)
def _splitter(markdown: bool, size: int, overlap: int):
    from semantic_text_splitter import MarkdownSplitter, TextSplitter

    return (MarkdownSplitter if markdown else TextSplitter)(size, overlap=overlap)


def split(text: str, fmt: str, size: int, overlap: int) -> list[str]:
    if overlap >= size:
        raise ValueError(f"chunk_overlap ({overlap}) must be smaller than chunk_size ({size})")
    return [c for c in _splitter(fmt == "markdown", size, overlap).chunks(text) if c.strip()]
