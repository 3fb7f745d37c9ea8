"""The transport's awaitable client against a raw server that sends exactly the bytes we choose."""

import asyncio
import time

import pytest
from rawserver import OK, RawServer, chunked, reset

from flotilla.transport import (
    BodyBroken,
    ConnectError,
    FirstByteTimeout,
    HttpClient,
    IdleTimeout,
    NoResponseError,
    ProtocolError,
    Timeouts,
    TransportError,
)

# Hang guard only: a test that would otherwise wait forever fails instead (no timing is asserted).
GUARD_S = 20


async def post(client: HttpClient, url: str, body: bytes = b"{}", path: str = "/s"):
    return await asyncio.wait_for(client.post(url, path, body, {}), GUARD_S)


async def read(resp) -> bytes:
    return await asyncio.wait_for(resp.read(), GUARD_S)


async def test_content_length_body_and_keep_alive_reuse():
    ok = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": true}'
    async with RawServer([ok, ok]) as srv:
        client = HttpClient()
        for _ in range(2):
            async with await client.post(srv.url, "/v1/x", b'{"q":1}', {"X-Request-Id": "r1"}) as resp:
                assert resp.status == 200 and resp.headers["content-type"] == "application/json"
                assert await read(resp) == b'{"a": true}'
        assert srv.connections == 1  # the second request reused the connection
        assert srv.requests[0].startswith(b"POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"X-Request-Id: r1" in srv.requests[0] and srv.requests[0].endswith(b'{"q":1}')
        await client.close()


async def test_base_path_of_an_openai_style_url_prefixes_the_request_path():
    async with RawServer([OK]) as srv:
        client = HttpClient()
        assert await read(await post(client, srv.url + "/v1/", path="/chat/completions")) == b"ok"
        assert srv.requests[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        await client.close()


async def test_chunks_that_arrive_together_are_yielded_together():
    async with RawServer([chunked(b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n")]) as srv:
        client = HttpClient()
        resp = await post(client, srv.url)
        assert [c async for c in resp.iter_chunks()] == [b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"]
        await client.close()


async def test_chunks_that_arrive_apart_are_yielded_as_they_arrive():
    second_may_go = asyncio.Event()

    async def paced(writer):
        whole = chunked(b"data: 1\n\n", b"data: 2\n\n")
        head, _, body = whole.partition(b"\r\n\r\n")
        first = b"9\r\ndata: 1\n\n\r\n"
        writer.write(head + b"\r\n\r\n" + first)
        await writer.drain()
        await second_may_go.wait()
        writer.write(body[len(first):])
        await writer.drain()

    async with RawServer([paced]) as srv:
        client = HttpClient()
        resp = await post(client, srv.url)
        pieces = []
        async for chunk in resp.iter_chunks():
            pieces.append(chunk)
            second_may_go.set()  # the second exists only after the first was yielded
        assert pieces == [b"data: 1\n\n", b"data: 2\n\n"]
        await client.close()


async def test_chunked_split_across_tcp_writes():
    async def dribble(writer):
        for byte in chunked(b"hello", b" world"):
            writer.write(bytes([byte]))
            await writer.drain()
        await asyncio.sleep(0.05)

    async with RawServer([dribble]) as srv:
        client = HttpClient()
        assert await read(await post(client, srv.url)) == b"hello world"
        await client.close()


async def test_stream_broken_midway_is_body_broken_after_the_head():
    async def die(writer):
        writer.write(chunked(b"data: 1\n\n", end=False))  # no terminating chunk, then a clean close
        await writer.drain()

    async with RawServer([die]) as srv:
        client = HttpClient()
        resp = await post(client, srv.url)
        got = []
        with pytest.raises(BodyBroken) as info:
            async for chunk in resp.iter_chunks():
                got.append(chunk)
        assert got == [b"data: 1\n\n"]
        assert info.value.response_started and not info.value.retry_safe
        await client.close()


async def test_close_delimited_body_ends_with_a_clean_close():
    async def close_body(writer):
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\noops")
        await writer.drain()

    async with RawServer([close_body]) as srv:
        client = HttpClient()
        resp = await post(client, srv.url)
        assert resp.status == 500 and await read(resp) == b"oops"
        await client.close()


async def test_close_delimited_body_cut_by_a_reset_is_not_complete():
    """Issue 9 item 6: the old client reported a body cut by a reset as complete."""
    async def cut(writer):
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart of a bo")
        await writer.drain()
        await asyncio.sleep(0.05)
        reset(writer)

    async with RawServer([cut]) as srv:
        client = HttpClient()
        resp = await post(client, srv.url)
        with pytest.raises(BodyBroken):
            await read(resp)
        await client.close()


async def test_100_continue_is_not_the_final_answer():
    """Issue 9 item 6: the old client took `100 Continue` as the response."""
    reply = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    async with RawServer([reply, OK]) as srv:
        client = HttpClient()
        resp = await post(client, srv.url)
        assert (resp.status, await read(resp)) == (200, b"ok")
        assert await read(await post(client, srv.url)) == b"ok"
        assert srv.connections == 1
        await client.close()


@pytest.mark.parametrize("status", [204, 304])
async def test_keep_alive_answer_without_a_body_ends_at_its_head(status):
    """Issue 9 item 6: a keep-alive 204 without Content-Length was read until the timer ran out."""
    empty = f"HTTP/1.1 {status} Nothing\r\n\r\n".encode()
    async with RawServer([empty, OK]) as srv:  # the server keeps the connection open after the 204
        client = HttpClient(Timeouts(first_byte=600, idle=600))
        resp = await post(client, srv.url)
        assert resp.status == status and await read(resp) == b""
        assert await read(await post(client, srv.url)) == b"ok"
        assert srv.connections == 1  # and the connection was reused
        await client.close()


async def test_bad_content_length_is_a_protocol_error_and_closes_the_connection():
    """Issue 9 item 6: the old client raised ValueError out of post() and left the socket open."""
    closed = asyncio.Event()

    async def bad(writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\nhello")
        await writer.drain()
        reader_side = writer.transport.get_protocol()._stream_reader  # wait for the client's close
        await reader_side.read()
        closed.set()

    async with RawServer([bad]) as srv:
        client = HttpClient()
        with pytest.raises(ProtocolError):
            await post(client, srv.url)
        await asyncio.wait_for(closed.wait(), GUARD_S)
        await client.close()


async def test_response_head_larger_than_the_limit_is_refused():
    """Issue 9 item 6: the old client had no limit on the size of a response head."""
    huge = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 1000) for i in range(100))

    async def endless(writer):
        writer.write(huge)  # 100 KB of headers and no end of the head
        await writer.drain()
        await asyncio.sleep(GUARD_S)

    async with RawServer([endless]) as srv:
        client = HttpClient()
        with pytest.raises(ProtocolError, match="larger than"):
            await post(client, srv.url)
        await client.close()


async def test_not_http_is_a_protocol_error():
    async def junk(writer):
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    async with RawServer([junk]) as srv:
        client = HttpClient()
        with pytest.raises(ProtocolError):
            await post(client, srv.url)
        await client.close()


async def test_ipv6_host_header_has_brackets():
    """Issue 9 item 6: the old client wrote `Host: ::1:PORT`."""
    async with RawServer([OK], host="::1") as srv:
        client = HttpClient()
        assert await read(await post(client, srv.url)) == b"ok"
        assert f"\r\nHost: [::1]:{srv.port}\r\n".encode() in srv.requests[0]
        await client.close()


async def test_refused_connection_is_a_retry_safe_connect_error():
    client = HttpClient(Timeouts(connect=1))
    with pytest.raises(ConnectError) as info:
        await post(client, "http://127.0.0.1:1")
    assert info.value.retry_safe


async def test_engine_closing_before_answering_is_not_retry_safe():
    async def hang_up(writer):
        return  # close without a byte, after reading the request

    async with RawServer([hang_up]) as srv:
        with pytest.raises(NoResponseError) as info:
            await post(HttpClient(), srv.url)
        assert not info.value.retry_safe  # the engine read the request: it may be working on it


async def test_stale_pooled_connection_is_found_before_the_request_is_written():
    async def ok_then_close(writer):
        writer.write(OK)
        await writer.drain()  # then the server closes this keep-alive connection

    async with RawServer([ok_then_close, OK]) as srv:
        client = HttpClient()
        assert await read(await post(client, srv.url)) == b"ok"
        time.sleep(0.1)  # the close reaches this socket while the event loop does not look
        assert await read(await post(client, srv.url)) == b"ok"
        assert srv.requests_per_connection == [1, 1]
        assert client.pool(srv.url).stale == 1  # dropped by the check before writing, not by a failed write
        await client.close()


async def test_a_hung_engine_receives_the_request_once():
    """Issue 9 item 1: with idle pooled connections the old client re-sent the request on each of
    them, then on a fresh one, each time waiting the whole timeout."""

    async def slow_ok(writer):
        await asyncio.sleep(0.1)  # keep the connection busy so that the next request opens another
        writer.write(OK)
        await writer.drain()
        return True  # keep the connection, read its next request

    async def never(writer):
        await asyncio.sleep(GUARD_S)

    async with RawServer([slow_ok] * 3 + [never] * 10) as srv:
        client = HttpClient(Timeouts(first_byte=0.5))
        await asyncio.gather(*(read_all(client, srv.url) for _ in range(3)))
        assert client.pool(srv.url).idle_connections == 3
        with pytest.raises(FirstByteTimeout) as info:
            await post(client, srv.url)
        assert not info.value.retry_safe
        await asyncio.sleep(0.2)
        assert len(srv.requests) == 4  # three answered, one copy of the hung request
        await client.close()


async def read_all(client, url):
    return await read(await post(client, url))


async def test_a_stream_longer_than_the_first_byte_timeout_is_not_cut():
    """Issue 9 item 1: one whole-exchange timer cut legitimate long streams."""
    async def long_stream(writer):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(30):
            await asyncio.sleep(0.05)  # 1.5 s in all: three first-byte timeouts, gaps far below the idle limit
            writer.write(b"2\r\n%02d\r\n" % i)
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with RawServer([long_stream]) as srv:
        client = HttpClient(Timeouts(first_byte=0.5, idle=5))
        body = await read(await post(client, srv.url))
        assert body == b"".join(b"%02d" % i for i in range(30))
        await client.close()


async def test_a_stalled_stream_ends_with_an_idle_timeout():
    async def stall(writer):
        writer.write(chunked(b"data: 1\n\n", end=False))
        await writer.drain()
        await asyncio.sleep(GUARD_S)

    async with RawServer([stall]) as srv:
        client = HttpClient(Timeouts(first_byte=600, idle=0.3))
        resp = await post(client, srv.url)
        got = []
        with pytest.raises(IdleTimeout) as info:
            async for chunk in resp.iter_chunks():
                got.append(chunk)
        assert got == [b"data: 1\n\n"] and info.value.response_started
        await client.close()


async def test_an_early_head_leaves_the_wait_for_the_first_token_to_the_first_byte_timeout():
    """vLLM sends a stream's head at once and its first event after queueing and prefill."""
    async def early_head(writer):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)  # longer than the idle limit, far shorter than the first-byte one
        writer.write(b"5\r\nfirst\r\n0\r\n\r\n")
        await writer.drain()

    async with RawServer([early_head]) as srv:
        client = HttpClient(Timeouts(first_byte=30, idle=0.2))
        assert await read(await post(client, srv.url)) == b"first"
        await client.close()


async def test_a_silent_engine_ends_with_a_first_byte_timeout():
    async def silent(writer):
        await asyncio.sleep(GUARD_S)

    async with RawServer([silent]) as srv:
        with pytest.raises(FirstByteTimeout):
            await post(HttpClient(Timeouts(first_byte=0.2)), srv.url)


async def test_a_slow_reader_pauses_the_connection_and_still_gets_everything():
    big = b"x" * (4 * 1024 * 1024)
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big
    async with RawServer([reply]) as srv:
        client = HttpClient()
        resp = await post(client, srv.url)
        got = bytearray()
        async for chunk in resp.iter_chunks():
            got += chunk
            assert len(chunk) <= 4 * 1024 * 1024
            await asyncio.sleep(0.001)
        assert bytes(got) == big
        await client.close()


async def test_every_failure_is_a_transport_error_with_a_stage():
    for cls in (BodyBroken, ConnectError, FirstByteTimeout, IdleTimeout, NoResponseError, ProtocolError):
        assert issubclass(cls, TransportError) and cls.stage != TransportError.stage


async def test_https_engine(tmp_path):
    """An external engine behind TLS (a self-signed certificate the client is told to trust)."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    srv = RawServer([OK, OK])
    server = await asyncio.start_server(srv.handle, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        client = HttpClient(ssl_context=trusted)
        assert await read(await post(client, f"https://localhost:{port}")) == b"ok"
        await client.close()
        with pytest.raises(ConnectError):  # the system's CAs do not trust a self-signed engine
            await post(HttpClient(), f"https://localhost:{port}")
    finally:
        server.close()
