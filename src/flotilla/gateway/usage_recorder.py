"""Usage records taken on the request path without touching the database, written in batches.

`record()` appends to an in-memory buffer (O(1), never awaits). A background task writes the
buffer every `flush_interval_s`, or as soon as `max_batch` records are waiting, in batches of at
most `max_batch`. A batch that fails to write goes back to the front of the buffer and is
retried with backoff, so nothing accepted is lost while the database is away. The limits:
- numbers are made safe before they are kept (store.records.sanitized: absurd token counts are
  clamped, negative or non-integer ones become unknown), so one engine's nonsense cannot make a
  batch fail;
- the buffer holds at most `max_buffered` records; beyond that `record()` refuses new ones,
  counts them in `records_dropped` and logs an error with the counts (never silently);
- a batch the database rejects for its content (UsageRejected, which retrying cannot fix) is
  split in halves until the offending records are isolated; those are counted in
  `records_rejected` and logged, the rest are written;
- `close()` has a deadline: what the database has not taken by then is appended to the spool file
  (usage_spool.py), which `replay_spool()` writes to the store at the next start. Records neither
  written nor spooled are counted in `records_lost` (the gateway then exits non-zero).
Writes are idempotent (request_id is unique), so a batch written twice counts once.
Call `record()` from the event loop the recorder runs on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable

from flotilla.gateway.usage_spool import UsageSpool
from flotilla.store import Store, UsageRecord, UsageRejected
from flotilla.store.records import sanitized

log = logging.getLogger("flotilla.usage")

MAX_BACKOFF_S = 30.0
DROP_LOG_INTERVAL_S = 10.0
CLOSE_TIMEOUT_S = 10.0


class UsageRecorder:
    def __init__(
        self,
        store: Store,
        flush_interval_s: float = 1.0,
        max_batch: int = 5000,
        max_buffered: int = 200_000,
        spool: UsageSpool | None = None,
    ) -> None:
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s!r}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch!r}")
        if max_buffered < max_batch:
            raise ValueError(f"max_buffered ({max_buffered}) must be >= max_batch ({max_batch})")
        self._store = store
        self._spool = spool
        self._flush_interval_s = flush_interval_s
        self._max_batch = max_batch
        self._max_buffered = max_buffered
        self._buffer: collections.deque[UsageRecord] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._consecutive_failures = 0
        self._last_drop_log = float("-inf")
        self._unkept = 0
        # Counters for the gateway's metrics.
        self.records_written = 0
        self.batches_written = 0
        self.write_failures = 0
        self.records_dropped = 0
        self.records_rejected = 0
        self.records_spooled = 0  # pending at close, kept in the spool file
        self.records_replayed = 0  # taken from the spool file at start

    @property
    def records_lost(self) -> int:
        """Records accepted or offered but neither in the database nor in the spool file."""
        return self.records_dropped + self.records_rejected + self._unkept

    @property
    def pending(self) -> int:
        """Records accepted but not yet written."""
        return len(self._buffer)

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the usage recorder is already started")
        if self._closing:
            raise RuntimeError("the usage recorder is closed")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="flotilla-usage-recorder")

    def record(self, rec: UsageRecord) -> None:
        if self._closing or len(self._buffer) >= self._max_buffered:
            self._drop()
            return
        self._buffer.append(sanitized(rec))
        # A full batch is written at once, unless writes are failing: then the backoff decides.
        if len(self._buffer) >= self._max_batch and not self._consecutive_failures:
            self._wake.set()

    async def replay_spool(self) -> None:
        """Write the records a previous run spooled at its stop; the file goes once all are written."""
        if self._spool is None:
            return
        try:
            with self._spool.taken() as records:
                if not records:
                    return
                log.info("replaying %d usage record(s) from %s", len(records), self._spool.path)
                for start in range(0, len(records), self._max_batch):
                    await self._write_batch([sanitized(r) for r in records[start : start + self._max_batch]])
                self.records_replayed += len(records)
        except OSError as exc:
            log.error("cannot read the usage spool %s (left in place): %s", self._spool.path, exc)
        except Exception as exc:  # noqa: BLE001 - the store failed: the file stays for the next start
            log.error(
                "could not replay the usage spool %s (left in place for the next start): %s: %s",
                self._spool.path, type(exc).__name__, _first_line(exc),
            )

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the background task and write everything accepted, for at most `timeout_s` in all.

        What is still unwritten then (the database is down, or hangs) goes to the spool file.
        """
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(timeout_s):
                if self._task is not None:
                    await self._task  # a write in progress ends, or is cancelled at the deadline
                while self._buffer:
                    await self._flush_buffer()
                    if self._buffer:
                        await asyncio.sleep(self._backoff_s())
        except TimeoutError:
            log.error(
                "usage recorder: the database took no more records within %g s at stop (%d failed write(s))",
                timeout_s, self.write_failures,
            )
        finally:
            if self._task is not None and not self._task.done():
                self._task.cancel()  # its unwritten batch goes back to the buffer
                await asyncio.gather(self._task, return_exceptions=True)
        self._keep_unwritten()
        self._closed = True

    def _keep_unwritten(self) -> None:
        if not self._buffer:
            return
        pending = list(self._buffer)
        self._buffer.clear()
        if self._spool is not None:
            try:
                self._spool.append(pending)
            except OSError as exc:
                log.error("cannot write the usage spool %s: %s", self._spool.path, exc)
            else:
                self.records_spooled += len(pending)
                log.warning(
                    "%d usage record(s) kept in %s; the next start writes them", len(pending), self._spool.path
                )
                return
        self._unkept += len(pending)
        log.error("usage recorder closing with %d record(s) unwritten and not spooled: they are lost", len(pending))

    async def _run(self) -> None:
        while not self._closing:
            delay = self._backoff_s() if self._consecutive_failures else self._flush_interval_s
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if self._closing:
                return  # close() drains with its own deadline
            await self._flush_buffer()

    def _backoff_s(self) -> float:
        return min(self._flush_interval_s * 2 ** min(self._consecutive_failures, 16), MAX_BACKOFF_S)

    async def _flush_buffer(self) -> None:
        """Write the whole buffer batch by batch; stop at the first failure (unwritten records stay)."""
        while self._buffer:
            count = min(len(self._buffer), self._max_batch)
            batch = [self._buffer.popleft() for _ in range(count)]
            try:
                await self._write_batch(batch, self._requeue)
            except Exception as exc:  # noqa: BLE001 - any failure here means: keep the records, retry later
                self.write_failures += 1
                self._consecutive_failures += 1
                log.warning(
                    "usage write failed (%s: %s); %d record(s) kept for retry, %d failure(s) so far",
                    type(exc).__name__,
                    _first_line(exc),
                    len(self._buffer),
                    self.write_failures,
                )
                return
            self._consecutive_failures = 0

    async def _write_batch(
        self, batch: list[UsageRecord], requeue: Callable[[list[UsageRecord]], None] | None = None
    ) -> None:
        """Write `batch`, splitting around records the database rejects for their content.

        On any other error (or cancellation) the records not yet written are given to `requeue`
        in order, and the error propagates.
        """
        chunks: collections.deque[list[UsageRecord]] = collections.deque([batch])
        while chunks:
            chunk = chunks.popleft()
            try:
                await self._store.write_usage(chunk)
            except UsageRejected as exc:
                if len(chunk) > 1:
                    middle = len(chunk) // 2
                    chunks.appendleft(chunk[middle:])
                    chunks.appendleft(chunk[:middle])
                    continue
                self.records_rejected += 1
                log.error(
                    "usage record %s rejected by the database and not stored (%s); %d rejected so far",
                    chunk[0].request_id,
                    _first_line(exc),
                    self.records_rejected,
                )
                continue
            except BaseException:
                if requeue is not None:
                    requeue([rec for part in (chunk, *chunks) for rec in part])
                raise
            self.records_written += len(chunk)
            self.batches_written += 1

    def _requeue(self, unwritten: list[UsageRecord]) -> None:
        self._buffer.extendleft(reversed(unwritten))

    def _drop(self) -> None:
        self.records_dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            reason = "closed" if self._closing else f"full ({len(self._buffer)} records waiting)"
            log.error(
                "usage recorder %s: dropping usage records; %d dropped so far, %d write failure(s)",
                reason,
                self.records_dropped,
                self.write_failures,
            )


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None)
    lines = str(original if original is not None else exc).strip().splitlines()
    return lines[0] if lines else ""
