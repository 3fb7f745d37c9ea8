"""sanitized(): a usual record passes untouched; any single bad number is still fixed (the fast
path that lets sane records through must not let a bad one through with them)."""

from __future__ import annotations

import pytest

from flotilla.store.records import MAX_TOKEN_COUNT, UsageRecord, sanitized


def usual(**changes) -> UsageRecord:
    record = UsageRecord(
        request_id="r", token_name="t", model="m", replica="m-0", status_code=200, outcome="ok", stream=False,
        prompt_tokens=12, completion_tokens=30, queue_wait_ms=0.5, ttft_ms=None, duration_ms=41.0,
    )
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def test_a_usual_record_is_kept_as_it_is():
    record = usual()
    expected = usual(ts=record.ts)
    assert sanitized(record) is record
    assert record == expected


@pytest.mark.parametrize(
    "field, bad, fixed",
    [
        ("prompt_tokens", 2**63, MAX_TOKEN_COUNT), ("prompt_tokens", -1, None), ("prompt_tokens", True, None),
        ("completion_tokens", 2.5, None), ("completion_tokens", "7", None), ("completion_tokens", 7.0, 7),
        ("queue_wait_ms", float("nan"), None), ("queue_wait_ms", -3.0, None), ("queue_wait_ms", 3, 3.0),
        ("ttft_ms", float("inf"), None), ("duration_ms", float("nan"), 0.0), ("duration_ms", 5, 5.0),
        ("status_code", 1000, 0), ("status_code", True, 0), ("status_code", "200", 0),
    ],
)
def test_each_bad_number_is_fixed(field, bad, fixed):
    record = sanitized(usual(**{field: bad}))
    assert getattr(record, field) == fixed
    assert type(getattr(record, field)) is type(fixed)
    assert record.prompt_tokens == (12 if field != "prompt_tokens" else fixed)
