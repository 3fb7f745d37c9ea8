"""The lean HTTP/1.1 client against a real aiohttp server: streams, errors, keep-alive, faults."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import orjson
import pytest
from aiohttp import web

from flotilla.bench.metrics import RequestRecord
from flotilla.bench.request import LeanTransport, request_headers


def chunk(text: str) -> bytes:
    return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}) + b"\n\n"


USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3}}\n\n'


async def stream(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    assert request.headers.get("Authorization") == "Bearer tok-1"
    assert body["stream"] is True
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await asyncio.sleep(0.05)
    for word in ("a", "b", "c"):
        await response.write(chunk(word))
        await asyncio.sleep(0.02)
    await response.write(USAGE + b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def unauthorized(request: web.Request) -> web.Response:
    return web.json_response({"error": {"message": "invalid token", "type": "auth"}}, status=401)


async def closing(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Connection": "close"})
    await response.prepare(request)
    await response.write(chunk("x") + USAGE + b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1.0)
    return web.Response(text="late")


async def dies(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(chunk("x"))
    await asyncio.sleep(0.02)
    request.transport.close()  # the engine dies mid-stream
    return response


@pytest.fixture
async def server():
    app = web.Application()
    for path, handler in (
        ("/v1/stream", stream),
        ("/v1/denied", unauthorized),
        ("/v1/closing", closing),
        ("/v1/slow", slow),
        ("/v1/dies", dies),
    ):
        app.router.add_post(path, handler)
    runner = web.AppRunner(app, keepalive_timeout=0.3)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    await runner.cleanup()


async def send(transport: LeanTransport, token: str | None = "tok-1") -> RequestRecord:
    record = RequestRecord("c", scheduled=0.0)
    await transport.send(request_headers(token), b'{"stream": true}', record, time.perf_counter())
    return record


async def test_chunked_stream_is_timed_and_connection_reused(server):
    transport = LeanTransport(server, "/stream", timeout_s=10)
    try:
        first = await send(transport)
        second = await send(transport)
    finally:
        await transport.close()
    for r in (first, second):
        assert r.success, r.error
        assert r.ttft >= 0.05 - 0.002  # the server waited 50 ms before the first token
        assert len(r.itl) == 2 and all(gap >= 0.015 for gap in r.itl)
        assert (r.prompt_tokens, r.output_tokens) == (4, 3)
    assert transport.connections_opened == 1  # keep-alive: the second request reused the first connection


async def test_error_status_keeps_the_connection(server):
    transport = LeanTransport(server, "/denied", timeout_s=10)
    try:
        r1, r2 = await send(transport), await send(transport)
    finally:
        await transport.close()
    assert (r1.status, r2.status) == ("401", "401")
    assert r1.error == "invalid token"
    assert transport.connections_opened == 1


async def test_connection_close_opens_a_new_connection(server):
    transport = LeanTransport(server, "/closing", timeout_s=10)
    try:
        results = [await send(transport) for _ in range(3)]
    finally:
        await transport.close()
    assert all(r.success for r in results)
    assert transport.connections_opened == 3


async def test_idle_connection_closed_by_the_server_is_not_reused(server):
    transport = LeanTransport(server, "/stream", timeout_s=10)
    try:
        assert (await send(transport)).success
        await asyncio.sleep(0.8)  # past the server's 0.3 s keep-alive timeout
        again = await send(transport)
    finally:
        await transport.close()
    assert again.success, again.error
    assert transport.connections_opened == 2


async def test_timeout(server):
    transport = LeanTransport(server, "/slow", timeout_s=0.3)
    try:
        r = await send(transport)
    finally:
        await transport.close()
    assert r.status == "timeout" and not r.success


async def test_engine_dying_mid_stream(server):
    transport = LeanTransport(server, "/dies", timeout_s=10)
    try:
        r = await send(transport)
    finally:
        await transport.close()
    assert r.status == "stream" and not r.success


async def test_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    transport = LeanTransport(f"http://127.0.0.1:{port}/v1", "/chat/completions", timeout_s=5)
    r = await send(transport)
    await transport.close()
    assert r.status == "connection" and "cannot connect" in r.error


async def test_many_concurrent_streams(server):
    transport = LeanTransport(server, "/stream", timeout_s=20)
    try:
        records = await asyncio.gather(*(send(transport) for _ in range(200)))
    finally:
        await transport.close()
    assert all(r.success for r in records), {r.error for r in records if not r.success}
    assert transport.connections_opened <= 200


async def test_response_arriving_in_tiny_pieces():
    """A raw server that writes a chunked SSE response a few bytes at a time: every parser state
    (head, chunk size, chunk data, chunk end, trailer) sees split input."""
    events = chunk("alpha") + chunk("beta") + USAGE + b"data: [DONE]\n\n"
    body = b"".join(
        f"{len(part):x};ext=1\r\n".encode() + part + b"\r\n" for part in (events[:40], events[40:150], events[150:])
    )
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + body
        + b"0\r\n\r\n"
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):  # two requests on one keep-alive connection
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(len(b'{"stream": true}'))
            for i in range(0, len(response), 5):
                writer.write(response[i : i + 5])
                await writer.drain()
                await asyncio.sleep(0)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = LeanTransport(f"http://127.0.0.1:{port}/v1", "/stream", timeout_s=10)
    try:
        records = [await send(transport), await send(transport)]
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()
    for r in records:
        assert r.success, r.error
        assert (r.prompt_tokens, r.output_tokens) == (4, 3)
        assert len(r.itl) == 1  # two content chunks: alpha, beta
    assert transport.connections_opened == 1


async def test_content_length_body_split_across_reads():
    payload = orjson.dumps({"error": {"message": "x" * 1500}})
    response = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for i in range(0, len(response), 300):
            writer.write(response[i : i + 300])
            await writer.drain()
            await asyncio.sleep(0.001)
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await reader.read()  # keep the connection until the client closes it

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = LeanTransport(f"http://127.0.0.1:{port}/v1", "/x", timeout_s=10)
    try:
        r = await send(transport)
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()
    assert r.status == "503"
    assert r.error == "x" * 300  # the message from the JSON error body, shortened


async def _raw_server(script) -> tuple[asyncio.AbstractServer, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(len(b'{"stream": true}'))
        await script(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"


async def test_close_delimited_stream_cut_by_a_reset_is_a_failure():
    """Issue 9 item 6: the old client took a reset as the clean end of a body without length."""
    import struct

    async def cut(writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + chunk("a"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server, url = await _raw_server(cut)
    transport = LeanTransport(url, "/x", timeout_s=10)
    try:
        r = await send(transport)
    finally:
        await transport.close()
        server.close()
    assert not r.success and r.status == "stream" and "reset" in r.error


async def test_bad_status_line_is_a_recorded_protocol_error():
    """Issue 9 item 6: the old client raised ValueError out of data_received."""
    async def bad(writer):
        writer.write(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    server, url = await _raw_server(bad)
    transport = LeanTransport(url, "/x", timeout_s=10)
    try:
        r = await send(transport)
    finally:
        await transport.close()
        server.close()
    assert not r.success and r.status == "connection" and "invalid HTTP response" in r.error
