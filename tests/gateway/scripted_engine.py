"""A fake engine (named as such: it stands in for a misbehaving GPU engine) whose answer to each
POST is chosen by a word in the request: it can hang, reset, send junk or stream slowly, byte for
byte as a test scripts it. Runs on its own event loop in a thread; health checks get 200."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Iterator

Script = Callable[[asyncio.StreamWriter], Awaitable[bool | None]]  # True: keep the connection


def sse_head() -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def reset(writer: asyncio.StreamWriter) -> None:
    """End the connection with a TCP reset, the way a crashed process's connections end."""
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ScriptedEngine:
    def __init__(self, scripts: dict[str, Script]) -> None:
        self.scripts = scripts
        self.posts: collections.Counter[str] = collections.Counter()  # scenario word -> requests received
        self.loop = asyncio.new_event_loop()
        self.url = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                if not head.startswith(b"POST"):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
                    continue
                word = next((w for w in self.scripts if f"scenario:{w}".encode() in body), None)
                if word is None:
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    continue
                self.posts[word] += 1
                if not await self.scripts[word](writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @contextlib.contextmanager
    def running(self) -> Iterator["ScriptedEngine"]:
        started = threading.Event()

        async def serve() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            started.set()
            async with server:
                await server.serve_forever()

        def run() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                self.loop.run_until_complete(serve())

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        started.wait(10)
        try:
            yield self
        finally:
            for task in asyncio.all_tasks(self.loop):
                self.loop.call_soon_threadsafe(task.cancel)
            thread.join(10)
