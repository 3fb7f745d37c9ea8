"""Everything one pipeline request carries through the graph: nothing here is shared between requests."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from flotilla.pipeline.calls import ModelClient
from flotilla.pipeline.errors import bad_request

# Body fields that steer the pipeline's nodes rather than the LLM (the seed's chat endpoint takes them too).
KNOBS = ("k", "top_n", "score_threshold")


@dataclass(frozen=True)
class Knobs:
    k: int | None = None
    top_n: int | None = None
    score_threshold: float | None = None


def read_knobs(body: dict[str, Any]) -> Knobs:
    """Pop the pipeline's knobs from a chat body; wrong types are the client's 400."""
    values: dict[str, Any] = {}
    for name in ("k", "top_n"):
        value = body.pop(name, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise bad_request(f"'{name}' must be a positive integer.", name)
        values[name] = value
    threshold = body.pop("score_threshold", None)
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1 <= threshold <= 1):
        raise bad_request("'score_threshold' must be a number between -1 and 1.", "score_threshold")
    values["score_threshold"] = threshold
    return Knobs(**values)


def last_user_text(messages: list[Any]) -> str:
    """The question: the last user message's text (string content, or the text parts of a content list)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise bad_request("A pipeline needs at least one user message with text content.", "messages")


@dataclass
class NodeRun:
    """One node's part in one request: when it ran (monotonic seconds), how often, how it ended."""

    node: str
    kind: str
    started: float | None = None
    ended: float | None = None
    attempts: int = 0
    outcome: str = "pending"  # ok | failed | timeout | skipped
    error: str | None = None


@dataclass
class RequestContext:
    client: ModelClient  # bound to the caller: its calls queue with the caller's priority
    body: dict[str, Any]  # the client's chat body, less `model` and the knobs
    stream: bool
    knobs: Knobs = field(default_factory=Knobs)
    request_id: str = ""
    trace: dict[str, NodeRun] = field(default_factory=dict)
    # Held open past the graph's run: the LLM's stream, released when the answer has been written.
    resources: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    created_at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[Any]:
        return self.body["messages"]

    @property
    def skipped(self) -> list[NodeRun]:
        return [run for run in self.trace.values() if run.outcome == "skipped"]
