"""Fetching the links an ingest request names: http(s) only, size-capped, time-capped."""

from __future__ import annotations

import aiohttp

from flotilla.pipeline.errors import PipelineError
from flotilla.pipeline.ingest.service import Upload


async def fetch_link(session: aiohttp.ClientSession, url: str, max_bytes: int, timeout_s: float = 30.0) -> Upload:
    if not url.startswith(("http://", "https://")):
        raise PipelineError(400, f"Link {url[:200]!r} is not an http(s) URL.", "invalid_link", "link_list", type="invalid_request_error")
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s), allow_redirects=True) as response:
            if response.status != 200:
                raise PipelineError(
                    400, f"Link {url} answered HTTP {response.status}.", "link_unavailable", "link_list", type="invalid_request_error"
                )
            data = bytearray()
            async for piece in response.content.iter_chunked(65536):
                data += piece
                if len(data) > max_bytes:
                    raise PipelineError(
                        413, f"Link {url} is larger than {max_bytes} bytes.", "document_too_large", "link_list",
                        type="invalid_request_error",
                    )
            return Upload(url, bytes(data), response.headers.get("Content-Type"))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise PipelineError(
            400, f"Link {url} could not be fetched: {exc or type(exc).__name__}.", "link_unavailable", "link_list",
            type="invalid_request_error",
        ) from None
