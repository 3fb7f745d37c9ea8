"""The gateway's HTTP/1.1 server on its own, over real sockets: sequencing, framing, limits, hang-ups."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import zlib

import pytest

from flotilla.httpserver import BodyError, BodyTooLarge, HttpServer, Response, Router, StreamResponse


class App:
    def __init__(self) -> None:
        self.router = Router()
        self.cancelled = asyncio.Event()
        self.started = asyncio.Event()
        self.router.add_post("/echo", self.echo)
        self.router.add_get("/slow/{ms}", self.slow)
        self.router.add_get("/hang", self.hang)
        self.router.add_get("/stream", self.stream)
        self.router.add_post("/refuse", self.refuse)

    async def __call__(self, request):
        return await self.router.resolve(request)(request)

    async def echo(self, request):
        try:
            body = await request.read()
        except BodyTooLarge:
            return Response(status=413, text="too large")
        except BodyError as exc:
            return Response(status=400, text=str(exc), headers={"Connection": "close"})
        return Response(body=body, content_type="application/octet-stream")

    async def refuse(self, request):  # answers before the body arrived, as the gateway does on Content-Length
        return Response(status=413, text="too large")

    async def slow(self, request):
        await asyncio.sleep(int(request.match_info["ms"]) / 1000)
        return Response(text=request.match_info["ms"])

    async def hang(self, request):
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def stream(self, request):
        response = StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: 1\n\n")
        await response.write(b"data: 2\n\n")
        await response.write_eof()
        return response


@contextlib.asynccontextmanager
async def serving(**options):
    app = App()
    server = HttpServer(app, max_body_bytes=options.pop("max_body_bytes", 1024), **options)
    await server.start("127.0.0.1", 0)
    try:
        yield app, server.port
    finally:
        await server.shutdown(0.5)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response: Content-Length, chunked, or read to the end."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, headers, body
            body += chunk[:-2]
    return status, headers, await reader.read()


def post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n%s\r\n%s" % (path.encode(), len(body), extra, body)


async def test_pipelined_requests_are_answered_in_order():
    async with serving() as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /slow/80 HTTP/1.1\r\nHost: t\r\n\r\nGET /slow/1 HTTP/1.1\r\nHost: t\r\n\r\n" + post("/echo", b"third"))
        answers = [await read_response(reader) for _ in range(3)]
        assert [a[2] for a in answers] == [b"80", b"1", b"third"]
        writer.close()


async def test_chunked_request_body_and_streamed_response():
    async with serving() as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        assert (await read_response(reader))[2] == b"hello world"
        writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert status == 200 and headers["transfer-encoding"] == "chunked" and body == b"data: 1\n\ndata: 2\n\n"
        writer.close()


async def test_an_http10_client_gets_the_stream_unframed_then_the_end_of_the_connection():
    async with serving() as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /stream HTTP/1.0\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert "transfer-encoding" not in headers and headers["connection"] == "close"
        assert body == b"data: 1\n\ndata: 2\n\n"


async def test_head_answers_a_get_route_without_its_body():
    async with serving() as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HEAD /slow/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /slow/2 HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"Content-Length: 1\r\n" in head
        assert (await read_response(reader))[2] == b"2", "no body after the HEAD answer"
        writer.close()


async def test_expect_100_continue_is_answered_when_the_body_is_read():
    async with serving() as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"body")
        assert (await read_response(reader))[2] == b"body"
        writer.close()


async def test_a_client_hanging_up_cancels_its_handler():
    async with serving() as (app, port):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.wait_for(app.started.wait(), 10)
        writer.close()
        await asyncio.wait_for(app.cancelled.wait(), 10)


async def test_a_refused_request_gets_the_hook_answer_and_the_connection_closes():
    seen = []

    def refuse(remote, reason):
        seen.append(reason)
        return Response(status=400, body=b"{}", content_type="application/json")

    async with serving(protocol_error=refuse) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Secret: abc\x7f\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert status == 400 and headers["connection"] == "close" and body == b"{}"
        assert await reader.read() == b"", "closed"
        assert seen and "abc" not in seen[0]


async def test_a_body_over_the_limit_is_dropped_as_it_arrives_and_refused():
    async with serving(max_body_bytes=1024) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post("/echo", b"x" * 300_000))
        assert (await read_response(reader))[0] == 413
        writer.write(post("/echo", b"next"))
        assert (await read_response(reader))[2] == b"next", "the body was read to its end: the connection goes on"
        writer.close()


async def test_an_answer_before_the_body_still_reaches_a_client_that_is_sending_it():
    async with serving(max_body_bytes=1024) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post("/refuse", b"x" * 3_000_000))
        status, headers, _ = await read_response(reader)
        assert status == 413 and headers["connection"] == "close"
        await writer.drain()  # the rest of the body was read (and dropped), not refused with a reset
        assert await asyncio.wait_for(reader.read(), 10) == b""


@pytest.mark.parametrize("encode", [gzip.compress, zlib.compress])
async def test_compressed_bodies_are_decoded_within_the_limit(encode):
    name = b"gzip" if encode is gzip.compress else b"deflate"
    async with serving(max_body_bytes=1024) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(post("/echo", encode(b"small"), b"Content-Encoding: " + name + b"\r\n"))
        assert (await read_response(reader))[2] == b"small"
        writer.write(post("/echo", encode(b"0" * 100_000), b"Content-Encoding: " + name + b"\r\n"))
        assert (await read_response(reader))[0] == 413, "a small body inflating past the limit"
        writer.close()


async def test_idle_keep_alive_connections_are_closed():
    async with serving(keepalive_timeout_s=0.4) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /slow/1 HTTP/1.1\r\nHost: t\r\n\r\n")
        await read_response(reader)
        assert await asyncio.wait_for(reader.read(), 10) == b"", "the server closed the idle connection"
