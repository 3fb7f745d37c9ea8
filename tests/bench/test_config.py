"""--class parsing and the resolution of flags and the spec's `benchmark:` section into a plan."""

from __future__ import annotations

import pytest

from flotilla.bench.classes import ClassSpecError, parse_class
from flotilla.bench.config import BenchConfigError, merge_settings, normalize_base_url, resolve_plan
from flotilla.bench.datasets import FixedPrompts, RandomText
from flotilla.spec.loader import parse_spec

SECRET = "sk-very-secret-value"


def plan_of(spec=None, **flags):
    flags.setdefault("url", "http://127.0.0.1:9")
    flags.setdefault("model", "m")
    return resolve_plan(merge_settings(spec.benchmark if spec else None, flags), spec)


# -- --class -----------------------------------------------------------------------------------
def test_class_with_every_key():
    c = parse_class(
        "staff:token=abc,rate=2.5,concurrency=4,burstiness=0.5,num-requests=10,input-len=64,output-len=32,"
        "range-ratio=0.2,dataset=builtin,model=chat"
    )
    assert (c.name, c.token, c.rate, c.concurrency, c.burstiness) == ("staff", "abc", 2.5, 4, 0.5)
    assert (c.num_requests, c.input_len, c.output_len, c.range_ratio, c.dataset, c.model) == (
        10,
        64,
        32,
        0.2,
        "builtin",
        "chat",
    )


def test_class_token_from_environment():
    c = parse_class("staff:token-env=STAFF_T,rate=1", env={"STAFF_T": SECRET})
    assert c.token == SECRET


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (":rate=1", "needs a name before ':'"),
        ("staff:rat=1", "unknown key 'rat' (known: token, token-env"),
        ("staff:rate", "'rate' is not key=value"),
        ("staff:rate=fast", "rate: Input should be a valid number"),
        ("staff:rate=-2", "rate: Input should be greater than 0"),
        ("staff:concurrency=0", "concurrency: Input should be greater than or equal to 1"),
        ("staff:rate=1,rate=2", "rate is given twice"),
        ("staff:rate=", "rate has no value"),
        ("staff:token-env=NOT_SET_ANYWHERE", "environment variable NOT_SET_ANYWHERE (token-env) is not set"),
        ("bad name!:rate=1", "class name 'bad name!' must be"),
        ("staff:range-ratio=1.5", "range-ratio: Input should be less than 1"),
    ],
)
def test_class_errors_are_clear(text, message):
    with pytest.raises(ClassSpecError) as info:
        parse_class(text, env={})
    assert message in str(info.value)
    if not text.startswith(":"):
        assert "--class" in str(info.value)


def test_class_errors_never_echo_the_token():
    with pytest.raises(ClassSpecError) as info:
        parse_class(f"staff:token={SECRET},rate=zero")
    assert SECRET not in str(info.value)


# -- resolution --------------------------------------------------------------------------------
def test_single_class_from_top_level_flags():
    plan = plan_of(rate=5.0, num_requests=40, token=SECRET, input_len=10, output_len=7)
    (c,) = plan.classes
    assert (c.name, c.rate, c.token, c.num_requests, c.burstiness) == ("default", 5.0, SECRET, 40, 1.0)
    assert isinstance(c.prompts, RandomText) and (c.prompts.input_len, c.prompts.output_len) == (10, 7)
    assert plan.base_url == "http://127.0.0.1:9/v1" and plan.path == "/chat/completions"


def test_classes_inherit_top_level_and_share_requests_by_rate():
    classes = [parse_class("a:rate=1").model_dump(), parse_class("b:rate=3,output-len=5").model_dump()]
    plan = plan_of(classes=classes, num_requests=100, output_len=9)
    a, b = plan.classes
    assert (a.num_requests, b.num_requests) == (25, 75)
    assert a.prompts.output_len == 9 and b.prompts.output_len == 5


def test_sweep_applies_to_classes_without_their_own_load():
    classes = [parse_class("staff:rate=2").model_dump(), parse_class("students").model_dump()]
    plan = plan_of(classes=classes, sweep=[4.0, 8.0], duration_s=5.0)
    steps = plan.steps()
    assert [[(c.name, c.rate) for c in cs] for _, cs in steps] == [
        [("staff", 2.0), ("students", 4.0)],
        [("staff", 2.0), ("students", 8.0)],
    ]
    assert [rate for rate, _ in steps] == [4.0, 8.0]


def test_sweep_that_changes_nothing_is_refused():
    with pytest.raises(BenchConfigError, match="--sweep changes nothing"):
        plan_of(classes=[parse_class("a:rate=1").model_dump()], sweep=[1.0, 2.0])


def test_concurrency_alone_is_a_closed_loop_and_with_rate_a_cap():
    (closed,) = plan_of(concurrency=3).classes
    assert (closed.rate, closed.concurrency) == (None, 3)
    (capped,) = plan_of(concurrency=3, rate=10.0).classes
    assert (capped.rate, capped.concurrency) == (10.0, 3)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({}, "no load given: set a rate"),
        ({"rate": 1.0, "arrival": "poisson", "burstiness": 0.5}, "Poisson arrivals have burstiness 1"),
        ({"rate": 1.0, "arrival": "constant", "burstiness": 2.0}, "burstiness applies to gamma"),
        ({"rate": 1.0, "url": "ftp://x"}, "give an http(s) URL"),
        ({"rate": 1.0, "dataset": "/nonexistent/sharegpt.json"}, "no such file"),
        ({"rate": 1.0, "goodput": {"ttfb": 3.0}}, "goodput metric 'ttfb' is not one of ttft, tpot, e2el"),
        ({"rate": 1.0, "percentiles": [100.0]}, "percentile 100.0 must be between 0 and 100"),
        ({"rate": -1.0}, "--rate: Input should be greater than 0 (got -1.0)"),
        ({"rate": 1.0, "num_requests": 5, "duration_s": 3.0}, "give numRequests or durationS, not both"),
        ({"rate": 1.0, "token_name": "staff"}, "token-name 'staff' needs --spec FILE"),
    ],
)
def test_resolution_errors_name_the_setting(flags, message):
    with pytest.raises(BenchConfigError) as info:
        plan_of(**flags)
    assert message in str(info.value)


def test_url_and_model_are_required_without_a_spec():
    with pytest.raises(BenchConfigError, match="--url is required"):
        resolve_plan(merge_settings(None, {"rate": 1.0, "model": "m"}))
    with pytest.raises(BenchConfigError, match="--model is required"):
        resolve_plan(merge_settings(None, {"rate": 1.0, "url": "http://h:1"}))


def test_url_normalization():
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert normalize_base_url("https://h/prefix/v1/chat/completions") == "https://h/prefix/v1"


SPEC = {
    "models": [{"name": "chat", "engine": "sim"}],
    "gateway": {
        "host": "0.0.0.0",
        "port": 8123,
        "tokens": [
            {"name": "staff", "token": "staff-token-123", "priority": 10},
            {"name": "students", "token": "student-token-123", "priority": 1},
        ],
    },
    "benchmark": {
        "durationS": 30,
        "rate": 3,
        "outputLen": 64,
        "goodput": {"ttft": 300},
        "classes": [
            {"name": "staff", "tokenName": "staff", "rate": 1},
            {"name": "students", "tokenName": "students"},
        ],
    },
}


def test_spec_section_gives_url_model_tokens_and_settings():
    spec = parse_spec(SPEC)
    plan = resolve_plan(merge_settings(spec.benchmark, {}), spec)
    assert plan.base_url == "http://127.0.0.1:8123/v1"  # 0.0.0.0 is reached on loopback
    staff, students = plan.classes
    assert (staff.model, staff.token, staff.rate) == ("chat", "staff-token-123", 1.0)
    assert (students.token, students.rate) == ("student-token-123", 3.0)
    assert plan.duration_s == 30 and plan.goodput_ms == {"ttft": 300}
    assert students.prompts.output_len == 64


def test_flags_override_the_spec_and_a_flag_stop_condition_replaces_the_spec_one():
    spec = parse_spec(SPEC)
    plan = resolve_plan(merge_settings(spec.benchmark, {"num_requests": 40, "rate": 7.0, "url": "http://gw:1"}), spec)
    assert plan.duration_s is None
    assert plan.base_url == "http://gw:1/v1"
    assert [c.rate for c in plan.classes] == [1.0, 7.0]
    assert sum(c.num_requests or 0 for c in plan.classes) == 40


def test_unknown_token_name_lists_the_known_ones():
    data = {**SPEC, "benchmark": {"rate": 1, "classes": [{"name": "x", "tokenName": "nobody"}]}}
    spec = parse_spec(data)
    with pytest.raises(
        BenchConfigError, match=r"no gateway token named 'nobody' in the spec \(known: staff, students\)"
    ):
        resolve_plan(merge_settings(spec.benchmark, {}), spec)


def test_builtin_dataset_keeps_its_lengths_unless_output_len_is_given():
    (c,) = plan_of(rate=1.0, dataset="builtin").classes
    assert isinstance(c.prompts, FixedPrompts) and c.prompts.output_len is None
    (c,) = plan_of(rate=1.0, dataset="builtin", output_len=5).classes
    assert c.prompts.output_len == 5
