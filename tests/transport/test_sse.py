"""The SSE reader against the standard's rules, whatever the network's read boundaries."""

from hypothesis import given
from hypothesis import strategies as st

from flotilla.transport.sse import SSEReader, event_data, split_events


def events_of(reads: list[bytes]) -> list[bytes | None]:
    reader = SSEReader()
    out = []
    for data in reads:
        out += [event_data(e) for e in split_events(reader.feed(data))]
    out += [event_data(e) for e in split_events(reader.finish())]
    return out


def test_done_without_the_space_is_done():
    """Issue 9 item 7: `data:[DONE]` is a valid spelling; the old relay did not see the end in it."""
    assert events_of([b'data:{"a":1}\n\ndata:[DONE]\n\n']) == [b'{"a":1}', b"[DONE]"]


def test_last_event_without_its_blank_line_is_kept():
    """Issue 9 item 7: the old relay and benchmark dropped it."""
    assert events_of([b"data: 1\n\ndata: [DONE]\n"]) == [b"1", b"[DONE]"]
    assert events_of([b"data: 1\n\ndata: [DONE]"]) == [b"1", b"[DONE]"]


def test_bare_cr_and_crlf_line_endings():
    """Issue 9 item 7: bare CR line endings were not handled."""
    assert events_of([b"data: 1\r\rdata: 2\r\n\r\ndata: 3\n\n"]) == [b"1", b"2", b"3"]


def test_an_event_ending_in_cr_is_complete_at_once():
    reader = SSEReader()
    assert split_events(reader.feed(b"data: 1\r\r")) == [b"data: 1"]
    assert reader.feed(b"\ndata: 2\r\n") == b""  # that LF belonged to the CR before it: no empty event
    assert split_events(reader.feed(b"\r\n")) == [b"data: 2"]


def test_multi_line_data_comments_and_other_fields():
    stream = b": keep-alive\n\nevent: message\nid: 7\ndata: a\ndata:b\ndata\n\nid: 8\n\n"
    assert events_of([stream]) == [None, b"a\nb\n", None]


def test_byte_order_mark_at_the_start_is_ignored():
    assert events_of([b"\xef\xbb\xbfdata: 1\n\n"]) == [b"1"]


def test_extra_blank_lines_between_events():
    assert events_of([b"data: 1\n\n\n\ndata: 2\n\n"]) == [b"1", b"2"]


@given(st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=12, max_size=12), st.data())
def test_any_split_of_the_stream_gives_the_same_events(endings, data):
    endings = list(endings)
    lines = [b"data: one", b"", b": ping", b"", b"data: two", b"data: lines", b"", b"data:[DONE]", b"", b"", b"", b""]
    for i in range(1, len(lines)):
        if endings[i - 1] == b"\r" and endings[i] == b"\n":  # CR then LF would be one CRLF: a different stream
            endings[i] = b"\r\n"
    stream = b"".join(line + ending for line, ending in zip(lines, endings))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reads = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    assert events_of(reads) == [b"one", None, b"two\nlines", b"[DONE]"]
