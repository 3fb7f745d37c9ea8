"""Requests aiohttp's parser refuses, and bodies that cannot be read: a 400 in OpenAI's format,
one log line each, never a secret in the logs, never a 500 (issue 9: items 2, 9 and 12)."""

from __future__ import annotations

import gzip
import json
import socket
import time
from pathlib import Path

import pytest
from gwstack import STAFF, spec_for
from procs import gateway, sim_engine

SECRET = "sk-never-log-me-0123456789"


def raw_exchange(gw: str, data: bytes, *, pause_s: float = 0.0, timeout: float = 15.0) -> bytes:
    """Send raw bytes, read until the gateway closes the connection (or answers and times out)."""
    host, port = gw.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        if pause_s:
            time.sleep(pause_s)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def log_of(stack) -> Path:
    return next(stack["tmp"].glob("gateway-*.log"))


def log_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


CHAT = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}).encode()


def post(path: str, body: bytes, extra: bytes = b"", auth: bytes = b"Authorization: Bearer " + STAFF.encode()) -> bytes:
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: gw\r\n" + auth + b"\r\n" + extra
        + b"Connection: close\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
        + b"\r\n\r\n" + body
    )


MALFORMED = {
    "token followed by DEL": post("/v1/chat/completions", CHAT, auth=f"Authorization: Bearer {SECRET}\x7f".encode()),
    "token followed by NUL": post("/v1/chat/completions", CHAT, auth=f"Authorization: Bearer {SECRET}\x00".encode()),
    "space before the colon": post("/v1/chat/completions", CHAT, auth=f"Authorization : Bearer {SECRET}".encode()),
    "folded header line": post("/v1/chat/completions", CHAT, auth=f"Authorization: Bearer\r\n {SECRET}".encode()),
    "LF-only line endings": post("/v1/chat/completions", CHAT, auth=f"Authorization: Bearer {SECRET}".encode())
    .replace(b"\r\n", b"\n"),
    "header line too long": post("/v1/chat/completions", CHAT, auth=f"Authorization: Bearer {SECRET}{'x' * 9000}".encode()),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_header_lines_never_log_the_secret(fast_stack, case):
    log = log_of(fast_stack)
    before = len(log_lines(log))
    status, headers, body = parse_response(raw_exchange(fast_stack["gateway"], MALFORMED[case]))
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert set(error) >= {"message", "type", "param", "code"} and error["code"] == "bad_http_request"
    assert SECRET not in body.decode("latin-1"), "the client's bytes are not echoed either"
    time.sleep(0.3)  # let the log line reach the file
    new = log_lines(log)[before:]
    assert SECRET not in "\n".join(new)
    rejected = [json.loads(line) for line in new if "rejected a request" in line]
    assert len(rejected) == 1, new
    assert rejected[0]["level"] == "warning" and "exc" not in rejected[0], "one line, no traceback"
    assert not any('"level":"error"' in line for line in new), new


def test_no_secret_anywhere_in_the_log_after_all_of_it(fast_stack):
    for data in MALFORMED.values():
        raw_exchange(fast_stack["gateway"], data)
    time.sleep(0.3)
    text = log_of(fast_stack).read_text(errors="replace")
    assert SECRET not in text and "Traceback" not in text


def test_json_nested_deeper_than_can_be_forwarded_is_400(fast_stack):
    for depth in (255, 600, 1023):
        nested = "[" * depth + "]" * depth
        body = f'{{"model": "chat", "messages": [{{"role": "user", "content": "x"}}], "extra": {nested}}}'.encode()
        status, headers, payload = parse_response(raw_exchange(fast_stack["gateway"], post("/v1/chat/completions", body)))
        assert status == 400, (depth, payload[:300])
        assert "too deeply" in json.loads(payload)["error"]["message"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_body_that_does_not_decompress_is_400(fast_stack, encoding):
    log = log_of(fast_stack)
    before = len(log_lines(log))
    data = post("/v1/chat/completions", b"this is not compressed", extra=f"Content-Encoding: {encoding}\r\n".encode())
    status, _, body = parse_response(raw_exchange(fast_stack["gateway"], data))
    assert status == 400
    assert "Content-Encoding" in json.loads(body)["error"]["message"]
    time.sleep(0.3)
    new = log_lines(log)[before:]
    assert not any('"level":"error"' in line for line in new), new


def test_a_compressed_body_that_decompresses_is_served(fast_stack):
    data = post("/v1/chat/completions", gzip.compress(CHAT), extra=b"Content-Encoding: gzip\r\n")
    status, _, body = parse_response(raw_exchange(fast_stack["gateway"], data + b""))
    assert status == 200, body[:300]


def test_a_body_that_never_finishes_gets_408(tmp_path):
    with sim_engine(tmp_path, ttft_ms=1, itl_ms=1) as sim, gateway(tmp_path, spec_for(bodyTimeoutS=1), {"chat": [sim]}) as gw:
        head = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + STAFF.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\": "
        )
        status, headers, body = parse_response(raw_exchange(gw, head, timeout=30))
        assert status == 408
        assert json.loads(body)["error"]["code"] == "request_timeout"
        assert headers.get("connection", "").lower() == "close"
