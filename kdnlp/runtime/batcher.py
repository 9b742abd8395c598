"""Dynamic batching: requests from many connections are queued and run together in one forward pass.

A batch closes when it holds max_batch rows, or max_wait_ms after its first row arrived, whichever is first; rows
that arrive while a batch runs wait for the next one, so under load batches fill up without waiting at all. One
batch runs at a time, in a worker thread (onnxruntime releases the GIL): the event loop keeps accepting and
answering meanwhile. The queue is bounded in rows (max_queue, counting the batch running): a request that would
exceed it is refused at once (Overloaded -> 503), so the backlog, and a request's wait, stay bounded.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from .metrics import Metrics


class Overloaded(Exception):
    pass


class Batcher:
    def __init__(self, run: Callable[[list], list], max_batch: int, max_wait_ms: float, max_queue: int,
                 metrics: Metrics):
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000
        self.max_queue, self.metrics = max_queue, metrics
        self.pending: deque = deque()  # (rows, future, arrival time)
        self.rows_in = 0               # rows queued or running: what max_queue bounds
        self.arrived = asyncio.Event()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="kdnlp-batch")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """After the server has drained its connections: nothing is pending any more."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    async def submit(self, rows: list) -> list:
        if self.rows_in + len(rows) > self.max_queue:
            raise Overloaded
        future = asyncio.get_running_loop().create_future()
        self.pending.append((rows, future, time.perf_counter()))
        self.rows_in += len(rows)
        self.metrics.queued(self.rows_in)
        self.arrived.set()
        return await future

    def _queued_rows(self) -> int:
        return sum(len(r) for r, _, _ in self.pending)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.pending:
                self.arrived.clear()
                await self.arrived.wait()
            deadline = self.pending[0][2] + self.max_wait
            while self._queued_rows() < self.max_batch and (left := deadline - time.perf_counter()) > 0:
                self.arrived.clear()
                try:
                    await asyncio.wait_for(self.arrived.wait(), left)
                except asyncio.TimeoutError:
                    break
            batch = [self.pending.popleft()]  # whole requests, at least one, up to max_batch rows
            n = len(batch[0][0])
            while self.pending and n + len(self.pending[0][0]) <= self.max_batch:
                batch.append(self.pending.popleft())
                n += len(batch[-1][0])
            rows = [x for r, _, _ in batch for x in r]
            self.metrics.batch(len(rows))
            try:
                results = await loop.run_in_executor(self.executor, self.run, rows)
            except Exception as e:  # an internal error: every request of this batch gets it (a 500), none hangs
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(e)
            else:
                start = 0
                for r, future, _ in batch:
                    if not future.done():  # a client that went away cancelled its future
                        future.set_result(results[start:start + len(r)])
                    start += len(r)
            finally:
                self.rows_in -= len(rows)
                self.metrics.queued(self.rows_in)
                self.metrics.predicted(len(rows))
