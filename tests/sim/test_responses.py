import orjson

from flotilla.sim.responses import VOCAB, ResponseFactory, embedding_vector, generated_text


def sse_events(payload: bytes) -> list:
    assert payload.endswith(b"\n\n")
    events = []
    for frame in payload.split(b"\n\n")[:-1]:
        assert frame.startswith(b"data: ")
        data = frame[len(b"data: "):]
        events.append(data if data == b"[DONE]" else orjson.loads(data))
    return events


def test_generated_text_has_one_vocabulary_word_per_token():
    assert generated_text(0) == ""
    assert generated_text(3) == "".join(VOCAB[:3])
    n = len(VOCAB) * 2 + 5
    assert generated_text(n) == "".join(VOCAB[i % len(VOCAB)] for i in range(n))


def test_chat_stream_has_vllms_shape():
    frames = ResponseFactory("chat").stream(chat=True)
    events = sse_events(frames.whole(4, "length", prompt_tokens=7, include_usage=True))
    assert events[-1] == b"[DONE]"
    role, *tokens, usage_event, _ = events
    assert role["object"] == "chat.completion.chunk" and role["model"] == "chat"
    assert role["id"].startswith("chatcmpl-") and len(role["id"]) == len("chatcmpl-") + 32
    assert role["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                "finish_reason": None}]
    assert len(tokens) == 4
    assert "".join(t["choices"][0]["delta"]["content"] for t in tokens) == generated_text(4)
    assert [t["choices"][0]["finish_reason"] for t in tokens] == [None, None, None, "length"]
    assert {t["id"] for t in events[:-1]} == {role["id"]}
    assert usage_event["choices"] == []
    assert usage_event["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}


def test_completion_stream_without_usage():
    frames = ResponseFactory("m").stream(chat=False)
    events = sse_events(frames.whole(3, "stop", prompt_tokens=2, include_usage=False))
    *tokens, done = events
    assert done == b"[DONE]" and len(tokens) == 3
    assert all(t["object"] == "text_completion" and "usage" not in t for t in tokens)
    assert "".join(t["choices"][0]["text"] for t in tokens) == generated_text(3)
    assert tokens[-1]["choices"][0]["finish_reason"] == "stop"


def test_non_streamed_completions():
    factory = ResponseFactory("m")
    chat = orjson.loads(factory.completion(True, 5, "length", 3))
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["content"] == generated_text(5)
    assert chat["choices"][0]["finish_reason"] == "length"
    assert chat["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    text = orjson.loads(factory.completion(False, 2, "stop", 1))
    assert text["object"] == "text_completion" and text["choices"][0]["text"] == generated_text(2)
    assert chat["id"] != factory.new_id(True)


def test_model_names_needing_json_escapes_stay_valid_json():
    frames = ResponseFactory('we"ird\\name').stream(chat=True)
    events = sse_events(frames.whole(2, "length", 1, True))
    assert events[0]["model"] == 'we"ird\\name'


def test_embeddings_depend_only_on_the_input_and_are_unit_vectors():
    a = embedding_vector(b"hello", 64)
    assert a == embedding_vector(b"hello", 64)
    assert a != embedding_vector(b"hello!", 64)
    assert abs(sum(v * v for v in a) - 1.0) < 1e-9
