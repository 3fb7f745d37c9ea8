import orjson
import pytest

from flotilla.sim.errors import SimError
from flotilla.sim.protocol import (
    check_model,
    count_text_tokens,
    parse_embedding_inputs,
    parse_generation,
    parse_json_object,
)


def chat(**extra):
    return {"model": "m", "messages": [{"role": "user", "content": "x" * 40}], **extra}


def refusal(fn, *args) -> SimError:
    with pytest.raises(SimError) as caught:
        fn(*args)
    return caught.value


def test_prompt_tokens_are_a_quarter_of_the_characters_rounded_up():
    assert [count_text_tokens(n) for n in (0, 1, 4, 5, 8, 9)] == [1, 1, 1, 2, 2, 3]
    body = {"messages": [{"role": "system", "content": "abcd"}, {"role": "user", "content": [
        {"type": "text", "text": "efgh"}, {"type": "image_url", "image_url": {"url": "x"}}]}]}
    assert parse_generation(body, chat=True, max_model_len=100).prompt_tokens == 2
    assert parse_generation({"prompt": [5, 6, 7]}, chat=False, max_model_len=100).prompt_tokens == 3
    assert parse_generation({"prompt": ["abcdefgh"]}, chat=False, max_model_len=100).prompt_tokens == 2


def test_max_completion_tokens_wins_over_max_tokens():
    req = parse_generation(chat(max_tokens=5, max_completion_tokens=9), chat=True, max_model_len=100)
    assert req.max_tokens == 9
    assert parse_generation(chat(), chat=True, max_model_len=100).max_tokens is None


def test_stream_and_usage_options():
    req = parse_generation(chat(stream=True, stream_options={"include_usage": True}), True, 100)
    assert req.stream and req.include_usage
    assert not parse_generation(chat(stream=True), True, 100).include_usage


@pytest.mark.parametrize(
    ("body", "chat_route", "words"),
    [
        ({"model": "m"}, True, "`messages`"),
        ({"messages": []}, True, "`messages`"),
        ({"messages": [{"content": "hi"}]}, True, "messages[0]"),
        ({"messages": [{"role": "user", "content": 5}]}, True, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, True]}]}, True,
         "messages[0].content[1] must be an object"),
        ({"model": "m"}, False, "`prompt` is required"),
        ({"prompt": {"a": 1}}, False, "`prompt` must be"),
        ({"prompt": ["a", "b"]}, False, "one prompt per request"),
        (chat(max_tokens=0), True, "`max_tokens` must be a positive integer"),
        (chat(max_tokens="10"), True, "`max_tokens`"),
        (chat(n=2), True, "`n` must be 1"),
        (chat(stream="yes"), True, "`stream` must be a boolean"),
        (chat(stream_options={"include_usage": True}), True, "only be defined when `stream=True`"),
    ],
)
def test_bad_generation_bodies_are_400_naming_the_problem(body, chat_route, words):
    error = refusal(parse_generation, body, chat_route, 100)
    assert error.status == 400
    assert words in error.message


def test_prompt_longer_than_the_context_is_400_in_vllms_words():
    error = refusal(parse_generation, {"prompt": "x" * 400}, False, 100)
    assert error.status == 400 and "maximum context length is 100 tokens" in error.message
    error = refusal(parse_generation, {"prompt": "x" * 40, "max_tokens": 95}, False, 100)
    assert "you requested 105 tokens (10 in the messages, 95 in the completion)" in error.message


def test_unknown_model_is_404_like_vllm():
    error = refusal(check_model, {"model": "other"}, "m")
    assert error.status == 404
    assert orjson.loads(error.body()) == {
        "error": {"message": "The model `other` does not exist.", "type": "NotFoundError", "param": "model",
                  "code": 404}
    }
    check_model({"model": "m"}, "m")
    check_model({}, "m")  # vLLM serves its only model when none is named


@pytest.mark.parametrize("raw", [b"{", b"", b"[1, 2]", b'"text"'])
def test_bodies_that_are_not_json_objects_are_400(raw):
    assert refusal(parse_json_object, raw).status == 400


def test_embedding_inputs_of_every_accepted_shape():
    assert [t for _, t in parse_embedding_inputs({"input": "abcdefgh"})] == [2]
    assert [t for _, t in parse_embedding_inputs({"input": ["abcd", "abcdefghi"]})] == [1, 3]
    assert [t for _, t in parse_embedding_inputs({"input": [1, 2, 3]})] == [3]
    assert [t for _, t in parse_embedding_inputs({"input": [[1, 2], [3]]})] == [2, 1]
    assert refusal(parse_embedding_inputs, {"input": []}).status == 400
    assert refusal(parse_embedding_inputs, {"input": [{"x": 1}]}).status == 400
