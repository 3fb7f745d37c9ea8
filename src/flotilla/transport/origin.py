"""Where requests go: scheme, host, port, the Host header and the base path of a URL."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Origin:
    host: str  # as getaddrinfo takes it: no brackets around an IPv6 address
    port: int
    tls: bool
    host_header: str  # RFC 9110 7.2: host[:port], an IPv6 address in brackets, the default port left out
    base_path: str  # a URL's path without its trailing slash ("" or "/v1"), put before every request path

    @classmethod
    def parse(cls, url: str) -> "Origin":
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r}: not an http:// or https:// URL with a host")
        tls = parts.scheme == "https"
        try:
            port = parts.port or (443 if tls else 80)
        except ValueError:
            raise ValueError(f"{url!r}: the port is not a number from 0 to 65535") from None
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        default = port == (443 if tls else 80)
        return cls(host, port, tls, shown if default else f"{shown}:{port}", parts.path.rstrip("/"))
