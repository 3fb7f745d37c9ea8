"""Is a server up? Not listening yet (starting), listening but not ready (loading), or healthy."""

from __future__ import annotations

import asyncio
from enum import Enum

import aiohttp


class Probe(str, Enum):
    DOWN = "down"  # nothing accepts connections on the port
    LISTENING = "listening"  # accepts connections, health not 200 yet
    HEALTHY = "healthy"


async def probe(session: aiohttp.ClientSession, url: str, timeout_s: float = 3.0) -> Probe:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            await response.read()
            return Probe.HEALTHY if response.status == 200 else Probe.LISTENING
    except aiohttp.ClientConnectorError:
        return Probe.DOWN
    except (aiohttp.ClientError, asyncio.TimeoutError):
        # Connected, then no proper answer in time: a loader busy with its model.
        return Probe.LISTENING
