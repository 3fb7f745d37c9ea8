"""OpenAI payloads in vLLM's shapes, built cheaply.

Generated text cycles through a fixed vocabulary, one word per token, so a response of n tokens
always has the same text. Stream frames are assembled from byte templates prepared once per
request (head) and once per process (per-word tails): no JSON encoding per token.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import os
import struct
import time
from typing import Any

import orjson

VOCAB = (
    " Flotilla", " shares", " a", " few", " replicas", " among", " many", " users", ";",
    " the", " queue", " decides", " who", " waits", " next", ".",
)
_CYCLE_TEXT = "".join(VOCAB)
_PREFIX_LEN = list(itertools.accumulate((len(w) for w in VOCAB), initial=0))

DONE_FRAME = b"data: [DONE]\n\n"
EMBEDDING_DIM = 384


def generated_text(n_tokens: int) -> str:
    whole, rest = divmod(n_tokens, len(VOCAB))
    return _CYCLE_TEXT * whole + _CYCLE_TEXT[: _PREFIX_LEN[rest]]


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


# Per-word endings of a frame, after the per-request head.
_CHAT_TAIL = tuple(b'{"content":' + _json(w) + b'},"logprobs":null,"finish_reason":null}]}\n\n' for w in VOCAB)
_TEXT_TAIL = tuple(_json(w) + b',"logprobs":null,"finish_reason":null,"stop_reason":null}]}\n\n' for w in VOCAB)


def _last_chat_tail(i: int, finish_reason: str) -> bytes:
    return (b'{"content":' + _json(VOCAB[i % len(VOCAB)]) + b'},"logprobs":null,"finish_reason":"'
            + finish_reason.encode() + b'","stop_reason":null}]}\n\n')


def _last_text_tail(i: int, finish_reason: str) -> bytes:
    return (_json(VOCAB[i % len(VOCAB)]) + b',"logprobs":null,"finish_reason":"' + finish_reason.encode()
            + b'","stop_reason":null}]}\n\n')


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
    }


class ResponseFactory:
    """Builds the payloads of one served model."""

    def __init__(self, model_name: str, parent: str | None = None) -> None:
        self.model_name = model_name
        self.parent = parent  # the base model of a LoRA adapter
        self._model_json = _json(model_name)
        self._id_prefix = os.urandom(8).hex()
        self._ids = itertools.count(1)

    def new_id(self, chat: bool) -> str:
        # Same length as vLLM's (prefix + 32 hex digits), without a uuid4 per request.
        return f"{'chatcmpl' if chat else 'cmpl'}-{self._id_prefix}{next(self._ids):016x}"

    def stream(self, chat: bool) -> StreamFrames:
        return StreamFrames(chat, self.new_id(chat), int(time.time()), self._model_json)

    def completion(
        self, chat: bool, n_tokens: int, finish_reason: str, prompt_tokens: int, extra: dict[str, Any] | None = None
    ) -> bytes:
        text = generated_text(n_tokens)
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": []},
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": None,
            }
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason, "stop_reason": None}
        return _json({
            "id": self.new_id(chat),
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [choice],
            "usage": usage(prompt_tokens, n_tokens),
            **(extra or {}),
        })

    def card(self, max_model_len: int, created: int) -> dict[str, Any]:
        # vLLM lists a LoRA adapter with its base model as `parent`.
        return {
            "id": self.model_name,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": self.model_name,
            "parent": self.parent,
            "max_model_len": max_model_len,
        }

    def models(self, max_model_len: int, created: int) -> bytes:
        return _json({"object": "list", "data": [self.card(max_model_len, created)]})

    def embeddings(self, inputs: list[tuple[bytes, int]], dimensions: int, base64_encoding: bool) -> bytes:
        data = []
        for index, (key, _) in enumerate(inputs):
            vector = embedding_vector(key, dimensions)
            encoded: Any = (
                base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if base64_encoding else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        prompt_tokens = sum(tokens for _, tokens in inputs)
        return _json({
            "id": f"embd-{self._id_prefix}{next(self._ids):016x}",
            "object": "list",
            "created": int(time.time()),
            "model": self.model_name,
            "data": data,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens, "completion_tokens": 0},
        })


def embedding_vector(key: bytes, dimensions: int) -> list[float]:
    """A unit vector that depends only on the input: equal inputs embed identically."""
    raw = hashlib.shake_256(key).digest(4 * dimensions)
    values = [v / 2147483648.0 - 1.0 for v in struct.unpack(f"<{dimensions}I", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class StreamFrames:
    """The SSE frames of one streamed response, vLLM style: for chat, the first frame carries
    the assistant role with the first token; the last token's frame carries finish_reason; with
    include_usage a frame with empty choices and usage follows; then [DONE]."""

    __slots__ = ("_chat", "_head", "_usage_head")

    def __init__(self, chat: bool, response_id: str, created: int, model_json: bytes) -> None:
        kind = b"chat.completion.chunk" if chat else b"text_completion"
        base = (b'data: {"id":"' + response_id.encode() + b'","object":"' + kind + b'","created":'
                + str(created).encode() + b',"model":' + model_json)
        self._head = base + (b',"choices":[{"index":0,"delta":' if chat else b',"choices":[{"index":0,"text":')
        self._usage_head = base + b',"choices":[],"usage":'
        self._chat = chat

    def opening(self) -> bytes:
        """Sent with the first token (chat only: the role delta)."""
        if not self._chat:
            return b""
        return self._head + b'{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'

    def token(self, i: int) -> bytes:
        return self._head + (_CHAT_TAIL if self._chat else _TEXT_TAIL)[i % len(VOCAB)]

    def last_token(self, i: int, finish_reason: str) -> bytes:
        return self._head + (_last_chat_tail if self._chat else _last_text_tail)(i, finish_reason)

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return self._usage_head + _json(usage(prompt_tokens, completion_tokens)) + b"}\n\n"

    def tokens(self, start: int, stop: int) -> bytes:
        """Frames of tokens start..stop-1, none of them the last."""
        head = self._head
        tails = _CHAT_TAIL if self._chat else _TEXT_TAIL
        v = len(VOCAB)
        return b"".join([head + tails[i % v] for i in range(start, stop)])

    def whole(self, n_tokens: int, finish_reason: str, prompt_tokens: int, include_usage: bool) -> bytes:
        """The complete stream in one piece (no simulated time)."""
        parts = [self.opening(), self.tokens(0, n_tokens - 1), self.last_token(n_tokens - 1, finish_reason)]
        if include_usage:
            parts.append(self.usage(prompt_tokens, n_tokens))
        parts.append(DONE_FRAME)
        return b"".join(parts)
