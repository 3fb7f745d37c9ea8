"""The lean upstream client against a raw TCP server that sends exactly the bytes we choose."""

import asyncio

import pytest

from flotilla.gateway.upstream import UpstreamBroken, UpstreamClient, UpstreamUnreachable


class RawServer:
    """Answers each request with the next scripted reply; records what it received."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")).split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0)
                if callable(reply):
                    await reply(writer)
                    return
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        finally:
            writer.close()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()


def chunked(*parts: bytes) -> bytes:
    body = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n" + body


async def test_content_length_body_and_keep_alive_reuse():
    ok = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": true}'
    async with RawServer([ok, ok]) as srv:
        client = UpstreamClient()
        for _ in range(2):
            async with await client.post(srv.url, "/v1/x", b'{"q":1}', {"X-Request-Id": "r1"}) as resp:
                assert resp.status == 200 and resp.headers["content-type"] == "application/json"
                assert await resp.read() == b'{"a": true}'
        assert srv.connections == 1  # the second request reused the connection
        assert srv.requests[0].startswith(b"POST /v1/x HTTP/1.1\r\n")
        assert b"X-Request-Id: r1" in srv.requests[0] and srv.requests[0].endswith(b'{"q":1}')
        await client.close()


async def test_chunks_that_arrive_together_are_yielded_together():
    async with RawServer([chunked(b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n")]) as srv:
        client = UpstreamClient()
        resp = await client.post(srv.url, "/s", b"{}", {})
        assert [c async for c in resp.iter_chunks()] == [b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"]
        await client.close()


async def test_chunks_that_arrive_apart_are_yielded_as_they_arrive():
    async def paced(writer):
        whole = chunked(b"data: 1\n\n", b"data: 2\n\n")
        head, _, body = whole.partition(b"\r\n\r\n")
        first = b"9\r\ndata: 1\n\n\r\n"
        writer.write(head + b"\r\n\r\n" + first)
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(body[len(first):])
        await writer.drain()

    async with RawServer([paced]) as srv:
        client = UpstreamClient()
        resp = await client.post(srv.url, "/s", b"{}", {})
        pieces = []
        async for chunk in resp.iter_chunks():
            pieces.append((chunk, asyncio.get_running_loop().time()))
        assert [p for p, _ in pieces] == [b"data: 1\n\n", b"data: 2\n\n"]
        assert pieces[1][1] - pieces[0][1] >= 0.05  # the first was relayed before the second existed
        await client.close()


async def test_chunked_split_across_tcp_writes():
    async def dribble(writer):
        for byte in chunked(b"hello", b" world"):
            writer.write(bytes([byte]))
            await writer.drain()
        await asyncio.sleep(0.05)

    async with RawServer([dribble]) as srv:
        client = UpstreamClient()
        resp = await client.post(srv.url, "/s", b"{}", {})
        assert await resp.read() == b"hello world"
        await client.close()


async def test_stream_broken_midway_raises_broken():
    async def die(writer):
        writer.write(chunked(b"data: 1\n\n")[:-5])  # no terminating chunk
        await writer.drain()

    async with RawServer([die]) as srv:
        client = UpstreamClient()
        resp = await client.post(srv.url, "/s", b"{}", {})
        got = []
        with pytest.raises(UpstreamBroken):
            async for chunk in resp.iter_chunks():
                got.append(chunk)
        assert got == [b"data: 1\n\n"]
        await client.close()


async def test_close_delimited_body():
    async def close_body(writer):
        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\noops")
        await writer.drain()

    async with RawServer([close_body]) as srv:
        client = UpstreamClient()
        resp = await client.post(srv.url, "/s", b"{}", {})
        assert resp.status == 500 and await resp.read() == b"oops"
        await client.close()


async def test_refused_connection_is_unreachable():
    client = UpstreamClient(connect_timeout=1)
    with pytest.raises(UpstreamUnreachable):
        await client.post("http://127.0.0.1:1", "/s", b"{}", {})


async def test_engine_closing_before_answering_is_unreachable():
    async def hang_up(writer):
        return  # close without a byte

    async with RawServer([hang_up]) as srv:
        with pytest.raises(UpstreamUnreachable):
            await UpstreamClient().post(srv.url, "/s", b"{}", {})


async def test_stale_pooled_connection_is_replaced_transparently():
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def ok_then_close(writer):
        writer.write(ok)
        await writer.drain()  # then the server closes this keep-alive connection

    async with RawServer([ok_then_close, ok]) as srv:
        client = UpstreamClient()
        assert await (await client.post(srv.url, "/s", b"{}", {})).read() == b"ok"
        await asyncio.sleep(0.05)
        assert await (await client.post(srv.url, "/s", b"{}", {})).read() == b"ok"
        assert srv.connections == 2
        await client.close()


async def test_timeout_aborts_a_silent_engine():
    async def silent(writer):
        await asyncio.sleep(5)

    async with RawServer([silent]) as srv:
        client = UpstreamClient(read_timeout=0.2)
        with pytest.raises((UpstreamBroken, UpstreamUnreachable)):
            await client.post(srv.url, "/s", b"{}", {})


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
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    srv = RawServer([ok, ok])
    server = await asyncio.start_server(srv.handle, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        client = UpstreamClient(ssl_context=trusted)
        assert await (await client.post(f"https://localhost:{port}", "/v1/x", b"{}", {})).read() == b"ok"
        await client.close()
        with pytest.raises(UpstreamUnreachable):  # the system's CAs do not trust a self-signed engine
            await UpstreamClient().post(f"https://localhost:{port}", "/v1/x", b"{}", {})
    finally:
        server.close()
