"""A retrieved chunk as it travels between nodes and into the answer's citations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Chunk:
    id: str  # "<document>#<index>": stable across re-ingestion of the same document
    document: str  # file name or URL it came from
    index: int  # position of the chunk in its document
    text: str
    score: float | None = None  # retriever: cosine similarity; reranker: its own score
    metadata: dict[str, Any] = field(default_factory=dict)

    def citation(self, snippet_chars: int = 240) -> dict[str, Any]:
        text = self.text if len(self.text) <= snippet_chars else self.text[: snippet_chars - 1] + "…"
        return {
            "id": self.id, "document": self.document, "chunk": self.index,
            "score": None if self.score is None else round(float(self.score), 6),
            "text": text, "metadata": self.metadata,
        }

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "document": self.document, "chunk": self.index, "text": self.text,
                "score": self.score, "metadata": self.metadata}

    @classmethod
    def from_json(cls, item: Any, position: int) -> "Chunk":
        """A chunk from a service's JSON (http nodes): a string, or an object with at least `text`."""
        if isinstance(item, str):
            return cls(id=f"item#{position}", document="", index=position, text=item)
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise ValueError(f"document {position} is not a string or an object with a string `text`")
        return cls(
            id=str(item.get("id", f"item#{position}")), document=str(item.get("document", "")),
            index=int(item.get("chunk", position)) if isinstance(item.get("chunk", position), int) else position,
            text=item["text"], score=item.get("score") if isinstance(item.get("score"), (int, float)) else None,
            metadata=item.get("metadata") if isinstance(item.get("metadata"), dict) else {},
        )
