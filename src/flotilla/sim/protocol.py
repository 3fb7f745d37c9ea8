"""Reading OpenAI request bodies: what to generate, and vLLM-like refusals of bad input.

Prompt tokens are counted without a tokenizer, cheaply and deterministically: one token per
4 characters of text, rounded up, at least 1 (for chat: the text of every message's content).
A completions prompt given as token ids counts one token per id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from flotilla.sim.errors import SimError, bad_request
from flotilla.sim.kv_cache import BlockHashes


def count_text_tokens(chars: int) -> int:
    return max(1, (chars + 3) // 4)


@dataclass(slots=True)
class GenerationRequest:
    chat: bool  # /v1/chat/completions (else /v1/completions)
    prompt_tokens: int
    max_tokens: int | None
    stream: bool
    include_usage: bool
    priority: int = 0  # vLLM's: lower first (with scheduling policy priority)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request(f"Request body must be a JSON object, got {type(body).__name__}")
    return body


def check_model(body: dict[str, Any], served_model: str, adapters: tuple[str, ...] = ()) -> str:
    """The model (or LoRA adapter) a request names; vLLM serves its base model when `model` is omitted."""
    model = body.get("model")
    if model is None:
        return served_model
    if model != served_model and model not in adapters:
        raise SimError(404, f"The model `{model}` does not exist.", "model")
    return model


def _chat_prompt_chars(messages: Any) -> int:
    if not isinstance(messages, list) or not messages:
        raise bad_request("`messages` must be a non-empty list of messages", "messages")
    chars = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise bad_request(f"messages[{i}] must be an object with a string `role`", "messages")
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict):  # vLLM refuses these too (its request model wants objects)
                    raise bad_request(f"messages[{i}].content[{j}] must be an object (a content part)", "messages")
                if isinstance(part.get("text"), str):
                    chars += len(part["text"])
        elif content is not None:
            raise bad_request(f"messages[{i}].content must be a string, a list of parts or null", "messages")
    return chars


def _completion_prompt_tokens(prompt: Any) -> int:
    # vLLM accepts one prompt as text or token ids; a batch of exactly one is the same thing.
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return count_text_tokens(len(prompt))
    if isinstance(prompt, list) and _token_ids(prompt):
        return len(prompt)
    if prompt is None:
        raise bad_request("`prompt` is required", "prompt")
    raise bad_request("`prompt` must be a string, a list of token ids, or a list of one of those "
                      "(the sim serves one prompt per request)", "prompt")


def _optional_positive_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad_request(f"`{key}` must be a positive integer, got {value!r}", key)
    return value


def parse_generation(body: dict[str, Any], chat: bool, max_model_len: int) -> GenerationRequest:
    if chat:
        prompt_tokens = count_text_tokens(_chat_prompt_chars(body.get("messages")))
    else:
        prompt_tokens = _completion_prompt_tokens(body.get("prompt"))

    # Both are checked, as vLLM's request model does; the newer name wins when both are given.
    max_completion_tokens = _optional_positive_int(body, "max_completion_tokens")
    max_tokens = _optional_positive_int(body, "max_tokens")
    if max_completion_tokens is not None:
        max_tokens = max_completion_tokens
    n = body.get("n", 1)
    if n is not None and n != 1:
        raise bad_request(f"the sim generates one choice per request: `n` must be 1, got {n!r}", "n")

    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request(f"`stream` must be a boolean, got {stream!r}", "stream")
    stream_options = body.get("stream_options")
    include_usage = False
    if stream_options is not None:
        if not stream:
            raise bad_request("Stream options can only be defined when `stream=True`.", "stream_options")
        if not isinstance(stream_options, dict):
            raise bad_request("`stream_options` must be an object", "stream_options")
        include_usage = bool(stream_options.get("include_usage"))

    # vLLM's context-length checks, in its words.
    if prompt_tokens >= max_model_len:
        raise bad_request(
            f"This model's maximum context length is {max_model_len} tokens. However, your request has "
            f"{prompt_tokens} input tokens. Please reduce the length of the input messages.",
            "messages" if chat else "prompt",
        )
    if max_tokens is not None and prompt_tokens + max_tokens > max_model_len:
        raise bad_request(
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
            "completion). Please reduce the length of the messages or completion.",
            "max_tokens",
        )
    return GenerationRequest(chat, prompt_tokens, max_tokens, stream, include_usage)


def parse_embedding_inputs(body: dict[str, Any]) -> list[tuple[bytes, int]]:
    """Each input as (bytes identifying it, token count): a string, a list of strings, token ids,
    or lists of token ids."""
    inputs = body.get("input")
    if isinstance(inputs, str):
        return [(inputs.encode(), count_text_tokens(len(inputs)))]
    if isinstance(inputs, list) and inputs:
        if _token_ids(inputs):
            return [(orjson.dumps(inputs), len(inputs))]
        parsed = []
        for i, item in enumerate(inputs):
            if isinstance(item, str):
                parsed.append((item.encode(), count_text_tokens(len(item))))
            elif isinstance(item, list) and _token_ids(item):
                parsed.append((orjson.dumps(item), len(item)))
            else:
                raise bad_request(f"input[{i}] must be a string or a list of token ids", "input")
        return parsed
    raise bad_request("`input` must be a non-empty string, list of strings, or token ids", "input")


def _token_ids(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(t, int) and not isinstance(t, bool) for t in items)


def parse_priority(body: dict[str, Any], policy: str) -> int:
    """The body's `priority` (vLLM's extra field: lower is served first), refused as vLLM refuses it
    when priority scheduling is off."""
    priority = body.get("priority")
    if priority is None:
        return 0
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise bad_request(f"`priority` must be an integer, got {priority!r}", "priority")
    if priority != 0 and policy != "priority":
        raise bad_request(f"Got priority {priority} but Priority scheduling is not enabled.", "priority")
    return priority


def prompt_block_hashes(body: dict[str, Any], chat: bool) -> BlockHashes:
    """The prompt's KV block hashes for the prefix cache (call after parse_generation accepted it).

    A chat prompt is the text of its messages' contents, one after another: a conversation's next
    turn (history + the answer + a new question) extends the text of the turn before and its answer,
    as a chat template's rendering does."""
    if chat:
        parts = []
        for message in body["messages"]:
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        return BlockHashes.of_text("".join(parts))
    prompt = body["prompt"]
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return BlockHashes.of_text(prompt)
    return BlockHashes.of_tokens(prompt)
