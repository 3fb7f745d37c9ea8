"""Multi-turn conversations to replay: from ShareGPT-format files, or generated with shared system prompts.

A conversation is replayed as vLLM's multi-turn benchmark replays it
(benchmarks/multi_turn/benchmark_serving_multi_turn.py): each user turn is one request whose
messages are the conversation so far (system prompt, earlier questions and the answers the server
actually gave) plus the new question; the next turn is sent when the answer is complete. Each turn
asks for as many tokens as the dataset's own answer has (or the output length given).

Files: a JSON list of entries holding either ShareGPT's `conversations` (`{"from": "human"|"gpt"|
"system", "value": ...}`) or OpenAI-style `messages` (`{"role": "user"|"assistant"|"system",
"content": ...}`, the format of vLLM's convert_sharegpt_to_openai.py).

Generated (`conversations`): `system_prompts` system prompts of `system_prompt_len` tokens, each
shared by many conversations (every conversation picks one), then `turns` questions of `input_len`
tokens, the workload of an organisation's assistants that share instructions and grow a history.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flotilla.bench.datasets import DatasetError, estimate_tokens, length_bounds, random_words, read_json_list

_USER_ROLES = {"human", "user"}
_ASSISTANT_ROLES = {"gpt", "assistant", "chatgpt", "bard", "bing", "model"}
DEFAULT_TURNS = 4


@dataclass(frozen=True, slots=True)
class Turn:
    question: str
    output_len: int  # max_tokens asked for the answer


@dataclass(frozen=True, slots=True)
class Conversation:
    system: str | None
    turns: tuple[Turn, ...]

    def messages(self, answers: list[str], turn: int) -> list[dict[str, str]]:
        """The request body's messages for turn number `turn` (0-based), given the answers so far."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        for i in range(turn):
            out.append({"role": "user", "content": self.turns[i].question})
            out.append({"role": "assistant", "content": answers[i]})
        out.append({"role": "user", "content": self.turns[turn].question})
        return out


class ConversationSource(Protocol):
    def sample(self, count: int, rng: random.Random) -> list[Conversation]: ...


@dataclass(frozen=True)
class FixedConversations:
    """Conversations from a file, shuffled and cycled to the count asked."""

    items: tuple[Conversation, ...]

    def sample(self, count: int, rng: random.Random) -> list[Conversation]:
        order = list(self.items)
        rng.shuffle(order)
        return [order[i % len(order)] for i in range(count)]


@dataclass(frozen=True)
class SharedPrefixConversations:
    """Generated chats: `system_prompts` system prompts shared by all conversations, `turns` questions each."""

    system_prompts: int
    system_prompt_len: int
    turns: int
    input_len: int
    output_len: int
    range_ratio: float = 0.0
    seed: int = 0

    def prompts(self) -> list[str]:
        """The shared system prompts (the same for a seed, whichever class or step samples them)."""
        rng = random.Random(f"system-prompts:{self.seed}")
        return [f"System prompt {i}: " + random_words(self.system_prompt_len, rng) for i in range(self.system_prompts)]

    def sample(self, count: int, rng: random.Random) -> list[Conversation]:
        systems = self.prompts()
        in_low, in_high = length_bounds(self.input_len, self.range_ratio)
        out_low, out_high = length_bounds(self.output_len, self.range_ratio)
        conversations = []
        for _ in range(count):
            system = systems[rng.randrange(len(systems))]
            turns = tuple(
                Turn(random_words(rng.randint(in_low, in_high), rng), rng.randint(out_low, out_high))
                for _ in range(self.turns)
            )
            conversations.append(Conversation(system, turns))
        return conversations


def _message(entry: Any) -> tuple[str, str] | None:
    """(role, text) of one message in either format, roles lowercased; None when malformed."""
    if not isinstance(entry, dict):
        return None
    role = entry.get("from", entry.get("role"))
    text = entry.get("value", entry.get("content"))
    if not isinstance(role, str) or not isinstance(text, str):
        return None
    return role.lower(), text


def _conversation(entry: Any, output_len: int | None, max_turns: int) -> Conversation | None:
    if not isinstance(entry, dict):
        return None
    raw = entry.get("conversations", entry.get("conversation", entry.get("messages")))
    if not isinstance(raw, list):
        return None
    messages = [m for m in map(_message, raw) if m is not None]
    system = None
    if messages and messages[0][0] == "system":
        system = messages.pop(0)[1] or None
    turns: list[Turn] = []
    i = 0
    while i < len(messages) and len(turns) < max_turns:
        role, text = messages[i]
        if role not in _USER_ROLES or not text.strip():
            break  # not the alternation a chat needs: keep the turns so far
        reply = messages[i + 1] if i + 1 < len(messages) and messages[i + 1][0] in _ASSISTANT_ROLES else None
        if output_len is not None:
            wanted = output_len
        elif reply is not None:
            wanted = max(1, estimate_tokens(reply[1]))
        else:
            break  # a last question without an answer and no output length to ask for
        turns.append(Turn(text, wanted))
        i += 2 if reply is not None else 1
    return Conversation(system, tuple(turns)) if turns else None


def sharegpt_conversations(path: str | Path, output_len: int | None, max_turns: int) -> FixedConversations:
    """The conversations of a ShareGPT-format (or OpenAI-messages) file, at most `max_turns` each."""
    path = Path(path)
    data = read_json_list(path, "a conversation dataset")
    items = tuple(c for c in (_conversation(e, output_len, max_turns) for e in data) if c is not None)
    if not items:
        raise DatasetError(
            f'{path}: no usable conversations (each entry needs "conversations" or "messages" starting with a '
            "user turn, each answered, or an output length given)"
        )
    return FixedConversations(items)


def conversation_source(
    dataset: str, turns: int | None, input_len: int, output_len: int | None, range_ratio: float,
    system_prompts: int, system_prompt_len: int, seed: int,
) -> ConversationSource:
    """'conversations' (generated) or a ShareGPT path replayed turn by turn."""
    if dataset == "conversations":
        return SharedPrefixConversations(
            system_prompts, system_prompt_len, turns or DEFAULT_TURNS, input_len, output_len or 128, range_ratio, seed
        )
    if dataset in ("random", "builtin"):
        raise DatasetError(f"dataset {dataset!r} has single prompts: multi-turn needs 'conversations' or a ShareGPT file")
    if not Path(dataset).exists():
        raise DatasetError(f"dataset {dataset!r}: no such file (use 'conversations' or a ShareGPT JSON path)")
    return sharegpt_conversations(dataset, output_len, turns or 1)
