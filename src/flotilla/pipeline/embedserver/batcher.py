"""Requests' texts go through the model together: whatever waits when the model is free forms one batch
(up to max_batch_size texts), which is how TEI keeps throughput under concurrent requests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from flotilla.pipeline.embedserver.model import OnnxEmbedder


@dataclass
class _Job:
    texts: list[str]
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Batcher:
    def __init__(self, model: OnnxEmbedder, max_batch_size: int) -> None:
        self.model = model
        self.max_batch_size = max_batch_size
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        self.batches = 0
        self.texts = 0

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="embed-batcher")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        job = _Job(texts)
        await self._queue.put(job)
        return await job.done

    async def _run(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            size = len(jobs[0].texts)
            while not self._queue.empty() and size + len(self._queue._queue[0].texts) <= self.max_batch_size:  # type: ignore[attr-defined]
                job = self._queue.get_nowait()
                jobs.append(job)
                size += len(job.texts)
            jobs = [j for j in jobs if not j.done.cancelled()]  # their clients left
            if not jobs:
                continue
            texts = [t for j in jobs for t in j.texts]
            try:
                vectors, tokens = await asyncio.to_thread(self._embed_in_slices, texts)
            except Exception as exc:
                for job in jobs:
                    if not job.done.done():
                        job.done.set_exception(exc)
                continue
            self.batches += 1
            self.texts += len(texts)
            start = 0
            for job in jobs:
                rows = vectors[start : start + len(job.texts)]
                start += len(job.texts)
                if not job.done.done():
                    job.done.set_result((rows, tokens * len(job.texts) // max(len(texts), 1)))

    def _embed_in_slices(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """One request may carry more texts than a batch: run it in slices of max_batch_size."""
        parts, tokens = [], 0
        for start in range(0, len(texts), self.max_batch_size):
            vectors, used = self.model.embed(texts[start : start + self.max_batch_size])
            parts.append(vectors)
            tokens += used
        return np.concatenate(parts), tokens
