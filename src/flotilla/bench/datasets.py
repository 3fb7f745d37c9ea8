"""Prompts to send: random text of set lengths, ShareGPT-format files, or the built-in set.

No tokenizer is loaded (nothing to download): random prompts use common English words that are
one token each in the usual BPE vocabularies, and dataset texts are estimated at ~4 characters per
token. The report's token counts come from the server's `usage`, not from these estimates.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

# Short, frequent words: one BPE token each (with their leading space) in GPT-2/Llama-style vocabularies.
_WORDS = (
    "the of and to in is was for on that with as by at from his her they this have are not but "
    "had one all were when there can an which their said if will each about how up out them then "
    "she many some so these would other into has more two time like see no way could people my "
    "than first water been call who now find long down day did get come made may part over new "
    "sound take only little work know place year live me back give most very after thing our just "
    "name good man think say great where help through much before line right too mean old any same "
    "tell boy follow came want show also around form three small set put end does another well large "
    "must big even such because turn here why ask went men read need land different home us move try "
    "kind hand picture again change off play spell air away animal house point page letter mother "
    "answer found study still learn should world high every near add food between own below country "
    "plant last school father keep tree never start city earth eye light thought head under story saw "
    "left few while along might close something seem next hard open example begin life always those "
    "both paper together got group often run important until children side feet car mile night walk "
    "white sea began grow took river four carry state once book hear stop without second later miss "
    "idea enough eat face watch far real almost let above girl sometimes mountain cut young talk soon "
    "list song being leave family body music color stand sun question fish area mark dog horse birds "
    "problem complete room knew since ever piece told usually friends easy heard order red door sure "
    "become top ship across today during short better best however low hours black products happened "
    "whole measure remember early waves reached"
).split()

CHARS_PER_TOKEN = 4.0


def random_words(n: int, rng: random.Random) -> str:
    """`n` common words: about `n` tokens."""
    return " ".join(rng.choices(_WORDS, k=n))


@dataclass(frozen=True, slots=True)
class PromptSample:
    prompt: str
    prompt_len: int  # estimated tokens
    output_len: int  # max_tokens to ask for


class PromptSource(Protocol):
    def sample(self, count: int, rng: random.Random) -> list[PromptSample]: ...


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file and the problem."""


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def length_bounds(length: int, range_ratio: float) -> tuple[int, int]:
    """vLLM's random-length range: uniform integers in [len*(1-r), len*(1+r)], at least 1."""
    if not 0 <= range_ratio < 1:
        raise ValueError(f"range ratio must be in [0, 1) (got {range_ratio})")
    return max(1, int(length * (1 - range_ratio))), max(1, int(length * (1 + range_ratio)))


@dataclass(frozen=True)
class RandomText:
    input_len: int
    output_len: int
    range_ratio: float = 0.0

    def sample(self, count: int, rng: random.Random) -> list[PromptSample]:
        in_low, in_high = length_bounds(self.input_len, self.range_ratio)
        out_low, out_high = length_bounds(self.output_len, self.range_ratio)
        samples = []
        for _ in range(count):
            n_in = rng.randint(in_low, in_high)
            words = rng.choices(_WORDS, k=n_in)
            samples.append(PromptSample(" ".join(words), n_in, rng.randint(out_low, out_high)))
        return samples


@dataclass(frozen=True)
class FixedPrompts:
    """A list of (prompt, output length) pairs, shuffled and cycled to the count asked."""

    items: tuple[PromptSample, ...]
    output_len: int | None = None  # overrides every item's length

    def sample(self, count: int, rng: random.Random) -> list[PromptSample]:
        order = list(self.items)
        rng.shuffle(order)
        picked = [order[i % len(order)] for i in range(count)]
        if self.output_len is None:
            return picked
        return [PromptSample(s.prompt, s.prompt_len, self.output_len) for s in picked]


def builtin_prompts(output_len: int | None = None) -> FixedPrompts:
    text = resources.files("flotilla.bench").joinpath("builtin_prompts.json").read_text()
    items = tuple(
        PromptSample(entry["prompt"], estimate_tokens(entry["prompt"]), int(entry["output_len"]))
        for entry in json.loads(text)
    )
    return FixedPrompts(items, output_len)


def _conversation_pair(entry: Any) -> tuple[str, str] | None:
    """First human turn and the reply to it, or None when the entry has no such pair."""
    if not isinstance(entry, dict):
        return None
    turns = entry.get("conversations", entry.get("conversation"))
    if not isinstance(turns, list) or len(turns) < 2:
        return None
    first, second = turns[0], turns[1]
    if not (isinstance(first, dict) and isinstance(second, dict)):
        return None
    prompt, reply = first.get("value"), second.get("value")
    if not isinstance(prompt, str) or not isinstance(reply, str):
        return None
    return prompt, reply


def read_json_list(path: Path, what: str) -> list:
    """A dataset file's JSON list, or a DatasetError naming the file and what is wrong with it."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the dataset: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    if not isinstance(data, list):
        raise DatasetError(f'{path}: {what} is a JSON list of {{"conversations": [...]}} entries')
    return data


def sharegpt_prompts(path: str | Path, output_len: int | None = None, max_prompt_tokens: int = 1024) -> FixedPrompts:
    """Entries with at least two turns; as vLLM does, drop pairs shorter than 4 tokens or too long."""
    path = Path(path)
    data = read_json_list(path, "a ShareGPT dataset")
    items = []
    for entry in data:
        pair = _conversation_pair(entry)
        if pair is None:
            continue
        prompt_len, reply_len = estimate_tokens(pair[0]), estimate_tokens(pair[1])
        if prompt_len < 4 or (output_len is None and reply_len < 4):
            continue
        if prompt_len > max_prompt_tokens:
            continue
        items.append(PromptSample(pair[0], prompt_len, reply_len))
    if not items:
        raise DatasetError(
            f'{path}: no usable conversations (each entry needs "conversations" with a human turn and a reply)'
        )
    return FixedPrompts(tuple(items), output_len)


def prompt_source(dataset: str, input_len: int, output_len: int | None, range_ratio: float) -> PromptSource:
    """'random', 'builtin', or a ShareGPT JSON path; `output_len` None keeps a dataset's own lengths."""
    if dataset == "random":
        return RandomText(input_len, output_len or 128, range_ratio)
    if dataset == "builtin":
        return builtin_prompts(output_len)
    if not Path(dataset).exists():
        raise DatasetError(
            f"dataset {dataset!r}: no such file (use 'random', 'builtin', 'conversations' or a ShareGPT JSON path)"
        )
    return sharegpt_prompts(dataset, output_len)
