"""Free TCP ports on this machine."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1", taken: set[int] | None = None) -> int:
    """A port the kernel says is free now; `taken` holds ports already handed out in this run."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if taken is None or port not in taken:
            if taken is not None:
                taken.add(port)
            return port
    raise RuntimeError("no free TCP port found")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def connect_host(listen_host: str) -> str:
    """Where to connect to a server listening on `listen_host` (a wildcard means this machine)."""
    return "127.0.0.1" if listen_host in ("0.0.0.0", "", "::") else listen_host
