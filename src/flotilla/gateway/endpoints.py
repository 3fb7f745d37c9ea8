"""Where a model's replicas are: fixed URLs, or the addresses behind a DNS name (Kubernetes headless Service)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class DiscoveryFailed(OSError):
    """A DNS name of a replica source did not resolve (the pool keeps its last known replicas).
    `no_such_name`: the DNS answered that the name has no address (a headless Service without a
    ready endpoint answers so), rather than failing to answer."""

    def __init__(self, message: str, no_such_name: bool = False) -> None:
        super().__init__(message)
        self.no_such_name = no_such_name


@dataclass(frozen=True)
class EndpointSource:
    """`http://host:port` is one replica; `dns+http://name:port` is one replica per address of `name`."""

    url: str

    @property
    def is_dns(self) -> bool:
        return self.url.startswith(("dns+http://", "dns+https://"))

    async def resolve(self) -> list[str]:
        if not self.is_dns:
            return [self.url.rstrip("/")]
        parts = urlsplit(self.url.removeprefix("dns+"))
        scheme = parts.scheme
        port = parts.port or (443 if scheme == "https" else 80)
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            no_name = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME))
            raise DiscoveryFailed(f"cannot resolve {parts.hostname}: {exc.strerror or exc}", no_name) from None
        addresses = sorted({info[4][0] for info in infos})
        return [f"{scheme}://{_host(a)}:{port}" for a in addresses]


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def parse_endpoint_flags(flags: list[str]) -> dict[str, list[EndpointSource]]:
    """`MODEL=URL` pairs from the command line, in order, grouped by model."""
    endpoints: dict[str, list[EndpointSource]] = {}
    for flag in flags:
        model, sep, url = flag.partition("=")
        if not sep or not model or not url:
            raise ValueError(f"--endpoint {flag!r}: expected MODEL=URL, e.g. chat=http://127.0.0.1:8101")
        if not url.startswith(("http://", "https://", "dns+http://", "dns+https://")):
            raise ValueError(f"--endpoint {flag!r}: the URL must start with http://, https:// or dns+http://")
        endpoints.setdefault(model, []).append(EndpointSource(url))
    return endpoints
