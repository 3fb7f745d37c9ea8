"""Server-sent events as the WHATWG HTML standard reads them ("Interpreting an event stream").

Lines end in CRLF, LF or a bare CR; a blank line ends an event; `data:` lines are joined by LF
with one leading space removed; lines starting with `:` are comments. The reader normalises line
endings to LF and cuts the stream after its last blank line, so callers handle whole events; the
common case (LF only, one `data: ` line per event) costs a `bytes.rfind` per read.

One deliberate leniency: the standard drops an event still unterminated when the stream ends;
`finish()` hands it over instead (completed with its blank line), because engines have been seen
ending a stream with `data: [DONE]` and no blank line.
"""

from __future__ import annotations

_BOM = b"\xef\xbb\xbf"


class SSEReader:
    __slots__ = ("_pending", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._pending = b""
        self._skip_lf = False  # the last read ended in CR: an LF opening the next one belongs to it
        self._started = False

    def feed(self, data: bytes) -> bytes:
        """The events completed by `data`, LF-normalised, each ending in a blank line (b"" if none)."""
        if not self._started:
            self._started = True
            if data.startswith(_BOM):
                data = data[3:]
        if self._skip_lf and data:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        if data.find(b"\r") >= 0:  # not `in`: bytes.__contains__ first tries the operand as an int and raises
            self._skip_lf = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._pending:
            data = self._pending + data
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self._pending = data
            return b""
        self._pending = data[cut + 2 :]
        return data[: cut + 2]

    def finish(self) -> bytes:
        """At the end of the stream: the last event if it lacked its blank line, completed; else b""."""
        rest, self._pending = self._pending, b""
        rest = rest.strip(b"\n")
        return rest + b"\n\n" if rest else b""


def split_events(block: bytes) -> list[bytes]:
    """The events of a block from `SSEReader` (each without its blank line; extra blank lines dropped)."""
    return [event.lstrip(b"\n") for event in block.split(b"\n\n") if event.strip(b"\n")]


def event_data(event: bytes) -> bytes | None:
    """An event's data: its `data` fields joined by LF; None when it has none (a comment, `id:` only)."""
    if event.startswith(b"data: ") and event.find(b"\n") < 0:
        return event[6:]  # the usual event: one `data: ` line
    data = None
    for line in event.split(b"\n"):
        if not line or line[:1] == b":":
            continue
        name, _, value = line.partition(b":")
        if name != b"data":
            continue
        if value[:1] == b" ":
            value = value[1:]
        data = value if data is None else data + b"\n" + value
    return data
