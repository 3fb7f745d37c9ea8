"""Prompt sources: random lengths, ShareGPT files, the built-in set."""

from __future__ import annotations

import json
import random

import pytest

from flotilla.bench.datasets import DatasetError, RandomText, builtin_prompts, sharegpt_prompts


def test_random_text_lengths_respect_the_range_ratio():
    samples = RandomText(100, 20, range_ratio=0.5).sample(400, random.Random(0))
    in_lens = [s.prompt_len for s in samples]
    out_lens = [s.output_len for s in samples]
    assert min(in_lens) >= 50 and max(in_lens) <= 150
    assert min(out_lens) >= 10 and max(out_lens) <= 30
    assert len(set(in_lens)) > 50  # really spread, not a constant
    assert all(len(s.prompt.split()) == s.prompt_len for s in samples)


def test_random_text_without_ratio_is_exact_and_prompts_differ():
    samples = RandomText(16, 8).sample(20, random.Random(1))
    assert {(s.prompt_len, s.output_len) for s in samples} == {(16, 8)}
    assert len({s.prompt for s in samples}) == 20  # no accidental prefix-cache hits


def test_builtin_set_needs_no_download_and_cycles():
    source = builtin_prompts()
    assert len(source.items) >= 30
    samples = source.sample(100, random.Random(0))
    assert len(samples) == 100 and all(s.prompt and s.output_len > 0 for s in samples)
    assert {s.output_len for s in builtin_prompts(output_len=9).sample(10, random.Random(0))} == {9}


def test_sharegpt_file(tmp_path):
    data = [
        {
            "id": "1",
            "conversations": [
                {"from": "human", "value": "Tell me about the sea and its tides."},
                {"from": "gpt", "value": "The sea rises and falls twice a day because " * 5},
            ],
        },
        {"id": "2", "conversations": [{"from": "human", "value": "only one turn here"}]},
        {
            "id": "3",
            "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello there friend"}],
        },
        "not an entry",
    ]
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(data))
    source = sharegpt_prompts(path)
    assert len(source.items) == 1  # single-turn and too-short entries are skipped, as vLLM does
    (item,) = source.items
    assert item.prompt.startswith("Tell me about the sea")
    assert item.output_len == pytest.approx(len(data[0]["conversations"][1]["value"]) / 4, abs=1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"conversations": []}', "a ShareGPT dataset is a JSON list"),
        ("[]", "no usable conversations"),
    ],
)
def test_sharegpt_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DatasetError) as info:
        sharegpt_prompts(path)
    assert str(path) in str(info.value) and message in str(info.value)
