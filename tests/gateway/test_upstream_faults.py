"""Engines that hang, break protocol or end oddly, through a real gateway process (issue 9)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from gwstack import STAFF, spec_for
from procs import gateway, usage_rows
from scripted_engine import ScriptedEngine, chunk, reset, sse_head

CONTENT = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
OK_BODY = b'{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(OK_BODY), OK_BODY)


async def slow_ok(writer):
    await asyncio.sleep(0.3)  # long enough that concurrent requests each open a connection
    writer.write(OK)
    await writer.drain()
    return True


async def hang(writer):
    await asyncio.sleep(3600)


async def junk_mid_stream(writer):
    writer.write(sse_head() + chunk(CONTENT))
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b"zz\r\nnot a chunk\r\n")  # not a chunk size: a protocol error after the head


async def done_then_reset(writer):
    writer.write(sse_head() + chunk(CONTENT + USAGE) + chunk(b"data: [DONE]\n\n"))
    await writer.drain()
    await asyncio.sleep(0.05)
    reset(writer)  # no terminating chunk: the connection dies unclean after the answer was whole


async def done_without_space(writer):
    writer.write(sse_head() + chunk(CONTENT + USAGE + b"data:[DONE]\n\n") + b"0\r\n\r\n")
    return True


async def last_event_unterminated(writer):
    writer.write(sse_head() + chunk(CONTENT + USAGE + b"data: [DONE]") + b"0\r\n\r\n")
    return True


async def done_then_hang(writer):
    writer.write(sse_head() + chunk(CONTENT + USAGE + b"data: [DONE]\n\n"))  # and never the terminating chunk
    await writer.drain()
    await asyncio.sleep(3600)


async def long_stream(writer):
    writer.write(sse_head())
    for _ in range(25):  # 2.5 s in all, more than twice the first-byte timeout
        await asyncio.sleep(0.1)
        writer.write(chunk(CONTENT))
        await writer.drain()
    writer.write(chunk(USAGE + b"data: [DONE]\n\n") + b"0\r\n\r\n")
    return True


SCRIPTS = {
    "slowok": slow_ok, "hang": hang, "junk": junk_mid_stream, "donereset": done_then_reset,
    "donenospace": done_without_space, "donehang": done_then_hang, "unterminated": last_event_unterminated, "long": long_stream,
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    spec = spec_for({"maxConcurrency": 16}, firstByteTimeoutS=1, idleTimeoutS=5)
    with ScriptedEngine(SCRIPTS).running() as engine, gateway(tmp, spec, {"chat": [engine.url]}) as gw:
        yield engine, gw, tmp


def body(scenario: str, stream: bool) -> bytes:
    return json.dumps({
        "model": "chat", "messages": [{"role": "user", "content": f"scenario:{scenario}"}], "stream": stream,
    }).encode()


def raw_exchange(gw: str, payload: bytes) -> bytes:
    """Everything the gateway sends back on one connection, until it closes or ends the chunked body."""
    host, port = gw.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {STAFF}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload
        )
        received = b""
        while not received.endswith(b"\r\n0\r\n\r\n"):
            data = sock.recv(65536)
            if not data:
                break
            received += data
        return received


def post(gw: str, payload: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        gw + "/v1/chat/completions", data=payload,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {STAFF}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def outcomes(tmp, at_least: int) -> dict[str, int]:
    rows = usage_rows(next(tmp.glob("flotilla-*.db")), ("outcome",), at_least=at_least)
    return {r["outcome"]: r["requests"] for r in rows}


def test_a_hung_engine_receives_the_request_once(stack):
    """Item 1: the old gateway re-sent a request to a hung engine on every idle pooled connection,
    then on a new one, and the handler retried on top: 2 to 33 copies of one prompt."""
    engine, gw, _ = stack
    with ThreadPoolExecutor(4) as pool:  # four at once: the gateway keeps four idle connections
        assert [s for s, _ in pool.map(lambda _: post(gw, body("slowok", False)), range(4))] == [200] * 4
    status, answer = post(gw, body("hang", False))
    time.sleep(1.5)  # longer than another first-byte timeout: a resend would have happened by now
    assert engine.posts["hang"] == 1
    assert status == 504 and json.loads(answer)["error"]["code"] == "upstream_timeout"


def test_a_protocol_error_mid_stream_ends_the_stream_not_a_second_head(stack):
    """Item 5: the old gateway wrote `HTTP/1.1 500` inside the chunked body it had started."""
    _, gw, _ = stack
    raw = raw_exchange(gw, body("junk", True))
    assert raw.startswith(b"HTTP/1.1 200") and raw.count(b"HTTP/1.1") == 1
    assert b"middle of the stream" in raw and raw.count(b"data: [DONE]") == 1
    assert raw.endswith(b"\r\n0\r\n\r\n")


def test_done_then_an_unclean_close_is_a_whole_answer(stack):
    """Item 7: the old relay wrote an error event and a second [DONE] after the engine's [DONE]."""
    _, gw, _ = stack
    status, answer = post(gw, body("donereset", True))
    assert status == 200 and answer == CONTENT + b"data: [DONE]\n\n"


def test_an_engine_hanging_after_done_does_not_hold_the_client(stack):
    """After [DONE] the gateway waits only briefly for the end of the engine's body, and the stall
    that follows is not reported to the client."""
    _, gw, _ = stack
    status, answer = post(gw, body("donehang", True))
    assert status == 200 and answer == CONTENT + b"data: [DONE]\n\n"


def test_done_without_a_space_ends_the_stream(stack):
    """Item 7: `data:[DONE]` became upstream_died_mid_stream plus an error event."""
    _, gw, _ = stack
    status, answer = post(gw, body("donenospace", True))
    assert status == 200 and answer == CONTENT + b"data: [DONE]\n\n"


def test_a_last_event_without_its_blank_line_is_relayed(stack):
    """Item 7: the old relay dropped it and reported the stream broken."""
    _, gw, _ = stack
    status, answer = post(gw, body("unterminated", True))
    assert status == 200 and answer == CONTENT + b"data: [DONE]\n\n"


def test_a_stream_longer_than_the_first_byte_timeout_is_whole(stack):
    """Item 1: the old single whole-exchange timer cut streams longer than upstreamTimeoutS."""
    _, gw, tmp = stack
    status, answer = post(gw, body("long", True))
    assert status == 200 and answer == CONTENT * 25 + b"data: [DONE]\n\n"


def test_usage_outcomes_of_these_requests(stack):
    _, gw, tmp = stack
    # 4 slowok + hang + 6 streams above (this test runs last in the module).
    seen = outcomes(tmp, at_least=11)
    assert seen.get("upstream_timeout") == 1
    assert seen.get("upstream_died_mid_stream") == 1  # the junk stream only
    assert seen.get("ok") == 9
