"""Run one benchmark step: every class's load at once, on one event loop.

Open-loop classes (a rate) get their whole arrival schedule computed before the first send, and
a request is sent at its scheduled time whatever the earlier ones are doing, so a slow server
cannot slow the offered load down (no coordinated omission). How late sends were against the
schedule is measured and reported. Closed-loop classes (concurrency only) keep a fixed number of
requests in flight instead.

Multi-turn classes (conversations.py) schedule conversations the same way: a conversation starts
at its arrival time (open loop) or when a worker is free (closed loop), and each next turn is sent
as soon as the answer to the one before is complete (its scheduled time: that moment). A failed
turn ends its conversation, as in vLLM's multi-turn benchmark.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from dataclasses import dataclass, field
from typing import Any

from flotilla.bench.config import BenchPlan, ClassPlan
from flotilla.bench.conversations import Conversation
from flotilla.bench.datasets import PromptSample, estimate_tokens
from flotilla.bench.metrics import RequestRecord, compute_metrics, send_lag_stats
from flotilla.bench.request import LeanTransport, Transport, chat_body, request_body, request_headers
from flotilla.bench.schedule import Arrivals

# A closed-loop worker draws its prompts this many at a time, as it needs them (drawing thousands
# per worker up front stalled the loop for seconds at the start of a run with many workers).
_CLOSED_LOOP_CHUNK = 256
# The event loop's timers have 1 ms resolution: a send this close to its time goes now rather
# than sleeping again and landing up to 1 ms late.
_EARLY_SEND_S = 0.0005


@dataclass
class ClassProgress:
    """Live counters of one class, read by the progress display."""

    name: str
    label: str
    expected: int | None  # requests to send in all (None: until the duration ends)
    sent: int = 0
    completed: int = 0
    failed: int = 0
    ttft_sum: float = 0.0

    @property
    def in_flight(self) -> int:
        return self.sent - self.completed - self.failed

    @property
    def mean_ttft_ms(self) -> float:
        return self.ttft_sum / self.completed * 1000.0 if self.completed else 0.0


@dataclass
class StepProgress:
    title: str
    total_s: float | None  # warm-up + duration, when known
    classes: list[ClassProgress]
    started: float = field(default_factory=time.perf_counter)
    stopping: bool = False

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started


@dataclass
class StepResult:
    rate: float | None  # the swept rate, if sweeping
    classes: tuple[ClassPlan, ...]
    records: list[RequestRecord]
    duration_s: float
    overall: dict[str, Any]
    per_class: dict[str, dict[str, Any]]
    send_lag: dict[str, float]
    usage_missing: int
    connections_opened: int
    interrupted: bool = False


@dataclass
class _Planned:
    at: float
    cls: int
    sample: PromptSample | None  # None: a conversation starts
    measured: bool
    conversation: Conversation | None = None

    @property
    def requests(self) -> int:
        return len(self.conversation.turns) if self.conversation is not None else 1


def _window(arrivals: Arrivals, start: float, seconds: float, rng: random.Random) -> list[float]:
    """rate × seconds arrivals from `start`, spread by the arrival process and rescaled (as vLLM
    does for a count) so the offered load is exactly the rate, whatever the seed."""
    count = round(arrivals.rate * seconds)
    return arrivals.for_count(count, rng, start=start) if count else []


def open_loop_schedule(classes: tuple[ClassPlan, ...], plan: BenchPlan, seed: int) -> list[_Planned]:
    """Every rate-driven class's arrivals for the step, merged and sorted by time."""
    warmup = plan.warmup_s
    merged: list[_Planned] = []
    for index, cls in enumerate(classes):
        if cls.rate is None:
            continue
        rng = random.Random(f"{seed}:{cls.name}")
        arrivals = Arrivals(cls.rate, cls.burstiness)
        if cls.conversations is not None:
            merged += _conversation_schedule(index, cls, plan, arrivals, rng)
            continue
        assert cls.prompts is not None
        warm = _window(arrivals, 0.0, warmup, rng)
        if plan.duration_s is not None:
            measured = _window(arrivals, warmup, plan.duration_s, rng)
        else:
            measured = arrivals.for_count(cls.num_requests or 1, rng, start=warmup)
        samples = cls.prompts.sample(len(warm) + len(measured), rng)
        times = [(t, False) for t in warm] + [(t, True) for t in measured]
        merged += [_Planned(t, index, s, m) for (t, m), s in zip(times, samples)]
    merged.sort(key=lambda p: p.at)
    return merged


def _conversation_schedule(
    index: int, cls: ClassPlan, plan: BenchPlan, arrivals: Arrivals, rng: random.Random
) -> list[_Planned]:
    """Conversation starts: those of the warm-up, then the measured ones (by duration, or as many
    as it takes to send num_requests turns, the last one cut short)."""
    assert cls.conversations is not None
    warm = _window(arrivals, 0.0, plan.warmup_s, rng)
    warm_conversations = cls.conversations.sample(len(warm), rng) if warm else []
    if plan.duration_s is not None:
        starts = _window(arrivals, plan.warmup_s, plan.duration_s, rng)
        measured = cls.conversations.sample(len(starts), rng) if starts else []
    else:
        wanted = cls.num_requests or 1
        measured = []
        while wanted > 0:  # drawn one by one: conversations are long to generate
            (conversation,) = cls.conversations.sample(1, rng)
            measured.append(Conversation(conversation.system, conversation.turns[:wanted]))
            wanted -= len(measured[-1].turns)
        starts = arrivals.for_count(len(measured), rng, start=plan.warmup_s)
    return [_Planned(t, index, None, False, c) for t, c in zip(warm, warm_conversations)] + [
        _Planned(t, index, None, True, c) for t, c in zip(starts, measured)
    ]


class StepRunner:
    def __init__(
        self,
        plan: BenchPlan,
        classes: tuple[ClassPlan, ...],
        rate: float | None,
        title: str,
        transport: Transport | None = None,
    ) -> None:
        self.plan = plan
        self.classes = classes
        self.rate = rate
        self.transport = transport or LeanTransport(plan.base_url, plan.path, plan.timeout_s)
        self.headers = [request_headers(c.token) for c in classes]
        self.caps = [asyncio.Semaphore(c.concurrency) if c.rate and c.concurrency else None for c in classes]
        self.records: list[RequestRecord] = []
        self.usage_missing = 0
        self._stop = asyncio.Event()
        self._clock_zero = 0.0
        self._measured_sent = [0] * len(classes)
        self._workers_started = [0] * len(classes)
        total_s = None if plan.duration_s is None else plan.warmup_s + plan.duration_s
        self.schedule = open_loop_schedule(classes, plan, plan.seed)
        expected = [0] * len(classes)
        for item in self.schedule:
            expected[item.cls] += item.requests
        self.progress = StepProgress(
            title,
            total_s,
            [
                ClassProgress(c.name, c.label, expected[i] if c.rate is not None else c.num_requests)
                for i, c in enumerate(classes)
            ],
        )

    def stop(self) -> None:
        """Send nothing more; requests in flight finish and are reported."""
        self.progress.stopping = True
        self._stop.set()

    async def run(self) -> StepResult:
        # A full garbage collection walking the whole schedule stalls the loop for milliseconds:
        # move what exists now out of the collector's sight, and collect young objects less often.
        gc.collect()
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], 20_000), thresholds[1], thresholds[2])
        try:
            return await self._run()
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()

    async def _run(self) -> StepResult:
        self._clock_zero = time.perf_counter()
        self.progress.started = self._clock_zero
        tasks: set[asyncio.Task[None]] = set()
        drivers = [asyncio.ensure_future(self._dispatch(tasks))]
        for index, cls in enumerate(self.classes):
            if cls.rate is None:
                drivers += [asyncio.ensure_future(self._closed_loop(index)) for _ in range(cls.concurrency or 1)]
        try:
            await asyncio.gather(*drivers)
            while tasks:
                await asyncio.gather(*list(tasks))
        finally:
            for task in drivers:
                task.cancel()
            await self.transport.close()
        return self._result()

    async def _dispatch(self, tasks: set[asyncio.Task[None]]) -> None:
        loop = asyncio.get_running_loop()
        zero = self._clock_zero
        for item in self.schedule:
            while not self._stop.is_set():
                delay = zero + item.at - time.perf_counter()
                if delay <= _EARLY_SEND_S:
                    break
                await asyncio.sleep(min(delay, 0.25))  # wake now and then to notice stop()
            if self._stop.is_set():
                return
            if item.conversation is not None:
                task = loop.create_task(self._converse(item.cls, item.conversation, item.measured, item.at))
            else:
                assert item.sample is not None
                record = RequestRecord(self.classes[item.cls].name, scheduled=item.at, measured=item.measured)
                task = loop.create_task(self._send(item.cls, item.sample, record))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _converse(
        self, index: int, conversation: Conversation, measured: bool, scheduled: float, claims: bool = False
    ) -> bool:
        """Send a conversation's turns one after another; False when the run's end cut it short.
        `claims`: each measured turn takes one of the class's num_requests first (closed loop)."""
        cls = self.classes[index]
        plan = self.plan
        end = None if plan.duration_s is None else plan.warmup_s + plan.duration_s
        answers: list[str] = []
        for turn, step in enumerate(conversation.turns):
            if self._stop.is_set():
                return False
            if claims:
                scheduled = time.perf_counter() - self._clock_zero
                measured = scheduled >= plan.warmup_s
                if end is not None and scheduled >= end:
                    return False
                if end is None and measured:
                    if self._measured_sent[index] >= (cls.num_requests or 0):
                        return False
                    self._measured_sent[index] += 1
            messages = conversation.messages(answers, turn)
            record = RequestRecord(cls.name, scheduled=scheduled, measured=measured)
            record.prompt_tokens = sum(estimate_tokens(m["content"]) for m in messages)
            answer: list[str] = []
            await self._send_body(index, chat_body(cls.model, messages, step.output_len, plan.ignore_eos), record, answer)
            if not record.success:
                return True  # a failed turn ends its conversation
            answers.append("".join(answer))
            scheduled = time.perf_counter() - self._clock_zero  # the next turn is due now
        return True

    async def _closed_loop_conversations(self, index: int) -> None:
        cls = self.classes[index]
        assert cls.conversations is not None
        rng = random.Random(f"{self.plan.seed}:{cls.name}:closed:{self._workers_started[index]}")
        self._workers_started[index] += 1
        while not self._stop.is_set():
            (conversation,) = cls.conversations.sample(1, rng)  # drawn when needed: long to generate
            if not await self._converse(index, conversation, False, 0.0, claims=True):
                return

    async def _closed_loop(self, index: int) -> None:
        cls = self.classes[index]
        if cls.conversations is not None:
            await self._closed_loop_conversations(index)
            return
        assert cls.prompts is not None
        plan = self.plan
        rng = random.Random(f"{plan.seed}:{cls.name}:closed:{self._workers_started[index]}")
        self._workers_started[index] += 1
        chunk = min(cls.num_requests or _CLOSED_LOOP_CHUNK, _CLOSED_LOOP_CHUNK)
        prompts: list[PromptSample] = []
        end = None if plan.duration_s is None else plan.warmup_s + plan.duration_s
        n = 0
        while not self._stop.is_set():
            now = time.perf_counter() - self._clock_zero
            measured = now >= plan.warmup_s
            if end is not None and now >= end:
                return
            if end is None and measured:
                if self._measured_sent[index] >= (cls.num_requests or 0):
                    return
                self._measured_sent[index] += 1  # claimed before the await: workers never overshoot
            if n == len(prompts):
                prompts, n = cls.prompts.sample(chunk, rng), 0
            record = RequestRecord(cls.name, scheduled=now, measured=measured)
            await self._send(index, prompts[n], record)
            n += 1

    async def _send(self, index: int, sample: PromptSample, record: RequestRecord) -> None:
        body = request_body(self.plan.endpoint, self.classes[index].model, sample, self.plan.ignore_eos)
        record.prompt_tokens = sample.prompt_len  # replaced by usage when the server reports it
        await self._send_body(index, body, record)

    async def _send_body(self, index: int, body: bytes, record: RequestRecord, answer: list[str] | None = None) -> None:
        progress = self.progress.classes[index]
        self.records.append(record)
        progress.sent += 1
        cap = self.caps[index]
        if cap is not None:
            async with cap:
                usage = await self.transport.send(self.headers[index], body, record, self._clock_zero, answer)
        else:
            usage = await self.transport.send(self.headers[index], body, record, self._clock_zero, answer)
        if record.success:
            progress.completed += 1
            progress.ttft_sum += record.ttft
            if not usage:
                self.usage_missing += 1
        else:
            progress.failed += 1

    def _result(self) -> StepResult:
        plan = self.plan
        measured = [r for r in self.records if r.measured]
        if not measured:
            raise RuntimeError("no request was measured: the run stopped during warm-up")
        end = max(r.finished for r in measured)
        duration = max(end - plan.warmup_s, 1e-9)
        goodput = plan.goodput_ms or None
        per_class = {
            c.name: compute_metrics(
                [r for r in measured if r.class_name == c.name], duration, plan.percentiles, goodput
            )
            for c in self.classes
        }
        return StepResult(
            rate=self.rate,
            classes=self.classes,
            records=self.records,
            duration_s=duration,
            overall=compute_metrics(measured, duration, plan.percentiles, goodput),
            per_class=per_class,
            send_lag=send_lag_stats([r for r in measured if self.caps[self._index(r.class_name)] is None]),
            usage_missing=self.usage_missing,
            connections_opened=self.transport.connections_opened,
            interrupted=self.progress.stopping,
        )

    def _index(self, name: str) -> int:
        for i, c in enumerate(self.classes):
            if c.name == name:
                return i
        raise KeyError(name)
