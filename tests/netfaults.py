"""Network faults for tests, on real sockets: a server that accepts and never answers, and a TCP
proxy in front of a real service that can be frozen (connections kept, nothing forwarded: a hung
server) or cut (connections reset, new ones refused: a server gone away).

Both run on their own event loop in a background thread, so blocking test code can use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte; yields its port."""
    runner = _LoopThread()
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(Exception):
            await reader.read()  # until the client goes away

    async def start() -> asyncio.Server:
        return await asyncio.start_server(hold, "127.0.0.1", 0)

    server = runner.call(start())
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        async def close() -> None:
            server.close()
            for writer in writers:
                writer.transport.abort()

        runner.call(close())
        runner.stop()


class FaultyProxy:
    """Forwards 127.0.0.1:`port` to `target_host`:`target_port` until told otherwise."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._runner = _LoopThread()
        self._frozen = asyncio.Event()  # set: forward nothing
        self._cut = False
        self._transports: set[asyncio.Transport] = set()
        self._server = self._runner.call(self._start())
        self.port: int = self._server.sockets[0].getsockname()[1]

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._cut:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.transport.abort()
            return
        self._transports.update({client_w.transport, server_w.transport})  # type: ignore[arg-type]
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w), return_exceptions=True)
        for writer in (client_w, server_w):
            writer.transport.abort()
            self._transports.discard(writer.transport)  # type: ignore[arg-type]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            while self._frozen.is_set():  # hold the bytes: the peer sees a server that never answers
                await asyncio.sleep(0.05)
            writer.write(data)
            await writer.drain()

    def freeze(self) -> None:
        self._runner.loop.call_soon_threadsafe(self._frozen.set)

    def thaw(self) -> None:
        self._runner.loop.call_soon_threadsafe(self._frozen.clear)

    def cut(self) -> None:
        """Reset every connection and refuse new ones (until `restore`)."""

        async def cut() -> None:
            self._cut = True
            for transport in list(self._transports):
                transport.abort()

        self._runner.call(cut())

    def restore(self) -> None:
        self._cut = False
        self.thaw()

    def close(self) -> None:
        self.cut()

        async def close() -> None:
            self._server.close()

        self._runner.call(close())
        self._runner.stop()
