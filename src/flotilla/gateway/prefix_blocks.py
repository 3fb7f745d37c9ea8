"""A prompt as a chain of block hashes, for prefix-aware routing.

The gateway does not tokenize; it cuts the prompt's text (chat messages with their roles, or a
completion prompt) into fixed-size byte blocks and hashes each together with the hash of the one
before, as engines chain their KV-cache block hashes. Two prompts share their first n blocks
exactly when they share that much leading text. Hashes are keyed BLAKE2b, the same in every
gateway process (Python's hash() is not), because a scheduler in another gateway compares them.
"""

from __future__ import annotations

import hashlib
from typing import Any

BLOCK_BYTES = 256
MAX_BLOCKS = 32  # the first 8 KiB decide: enough to tell shared system prompts and turns apart


def prompt_text(payload: dict[str, Any]) -> bytes:
    messages = payload.get("messages")
    if isinstance(messages, list):
        parts = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            parts.append(str(message.get("role", "")))
            parts.append("\x00")
            parts.append(_content_text(message.get("content")))
            parts.append("\x01")
        return "".join(parts).encode("utf-8", "replace")
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        return prompt.encode("utf-8", "replace")
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return prompt[0].encode("utf-8", "replace")  # a batch: route by its first prompt
    return b""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: the text ones matter for the prefix
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def prompt_blocks(payload: dict[str, Any]) -> tuple[int, ...]:
    """Chained hashes of the prompt's full leading blocks (a partial last block is left out)."""
    text = prompt_text(payload)
    blocks = []
    previous = b""
    for start in range(0, min(len(text) // BLOCK_BYTES, MAX_BLOCKS) * BLOCK_BYTES, BLOCK_BYTES):
        digest = hashlib.blake2b(text[start : start + BLOCK_BYTES], digest_size=8, key=previous).digest()
        blocks.append(int.from_bytes(digest, "big") >> 1)  # 63 bits: a JSON integer every peer reads
        previous = digest
    return tuple(blocks)
