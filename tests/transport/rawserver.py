"""A TCP server that answers HTTP requests with exactly the bytes a test scripts: the way to make a
server misbehave precisely (hang, reset, send junk)."""

from __future__ import annotations

import asyncio
import socket
import struct


class RawServer:
    """Each request gets the next scripted reply: bytes to write, or an async callable(writer)
    that does what it likes (then the connection ends, unless it returns True). Records every
    request it read."""

    def __init__(self, replies, host: str = "127.0.0.1") -> None:
        self.replies = list(replies)
        self.host = host
        self.requests: list[bytes] = []
        self.requests_per_connection: list[int] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        index = len(self.requests_per_connection)
        self.requests_per_connection.append(0)
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
                )
                self.requests.append(head + await reader.readexactly(length))
                self.requests_per_connection[index] += 1
                reply = self.replies.pop(0)
                if callable(reply):
                    if await reply(writer):
                        continue
                    return
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> "RawServer":
        self.server = await asyncio.start_server(self.handle, self.host, 0)
        port = self.server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}"
        self.port = port
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (RST) instead of a clean FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def chunked(*parts: bytes, end: bool = True) -> bytes:
    body = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + (b"0\r\n\r\n" if end else b"")
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n" + body


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\nok"
