"""One worker thread per served model, fed by a bounded queue; and the server's counters.

Torch models are not thread-safe and hold the CPU while they compute, so each model is
used by exactly one thread, off the event loop. A request waits in its model's queue; a
full queue is refused at once (the server answers 503 with Retry-After) rather than
letting waits grow without bound. Nothing here imports starlette or uvicorn.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


class Busy(Exception):
    """The model's queue is full."""


class Cancelled(Exception):
    """The request was abandoned (timed out, or its client went away) before it ran."""


@dataclass
class Job:
    """A call to make on the worker thread. ``cancelled`` is set when nobody waits for the
    result any more: a job not yet started is then skipped, and a stream stops between
    pieces (a call already running cannot be interrupted).

    A batchable job has a ``batch`` function instead, taking many jobs' ``item`` at once
    and returning their results in order; jobs whose ``batch`` is the same function are
    run together when they arrive within the worker's batch window."""

    call: Callable[[], Any] | None
    done: Callable[[Any, BaseException | None], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    batch: Callable[[list[Any]], list[Any]] | None = None
    item: Any = None


class ModelWorker:
    """Runs the jobs of one model on its own thread: one at a time, or batchable ones
    together (dynamic batching: after the first, wait up to ``batch_window`` seconds for
    others, at most ``max_batch`` in all)."""

    def __init__(
        self, name: str, queue_size: int, batch_window: float = 0.0, max_batch: int = 1
    ) -> None:
        self.name = name
        self.batch_window = batch_window
        self.max_batch = max_batch
        self.batches = self.batched = 0  # batches run, and the jobs in them (for /metrics)
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=queue_size)
        self._held: collections.deque[Job | None] = collections.deque()  # taken, not batched
        self._thread = threading.Thread(target=self._run, name=f"gentool-{name}", daemon=True)
        self._thread.start()

    def _next(self, timeout: float | None = None) -> Job | None:
        if self._held:
            return self._held.popleft()
        return self._jobs.get(timeout=timeout)

    def _run(self) -> None:
        while (job := self._next()) is not None:
            if job.cancelled.is_set():
                job.done(None, Cancelled())
            elif job.batch is None:
                assert job.call is not None
                _finish([job], job.call)
            else:
                group = self._gather(job)
                self.batches += 1
                self.batched += len(group)
                _finish(group, functools.partial(job.batch, [j.item for j in group]))

    def _gather(self, first: Job) -> list[Job]:
        """``first`` and the jobs of its batch that arrive within the window."""
        group = [first]
        deadline = time.monotonic() + self.batch_window
        later: list[Job | None] = []
        while len(group) < self.max_batch and self.batch_window > 0:
            try:
                job = self._next(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            # == : the same function (bound methods of one object are equal, not identical)
            if job is not None and job.batch == first.batch and not job.cancelled.is_set():
                group.append(job)
            else:
                later.append(job)  # in arrival order, after this batch
                if job is None:
                    break
        self._held.extend(later)
        return group

    def submit(self, job: Job) -> None:
        """Queue ``job``; Busy when the queue is full."""
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise Busy(self.name) from None

    async def call(self, call: Callable[[], Any], timeout: float) -> Any:
        """Run ``call`` on this worker; its result, or its exception raised here.
        TimeoutError after ``timeout`` seconds (the job is then cancelled)."""
        return await self._settled(lambda done: Job(call, done), timeout)

    async def stream(self, pieces: Callable[[], Iterator[str]], timeout: float) -> Any:
        """Run the generator ``pieces()`` on this worker; an async iterator of its pieces,
        each as soon as it is made. TimeoutError when the whole has not ended after
        ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        out: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        deadline = loop.time() + timeout
        job: Job

        def run() -> None:
            for piece in pieces():
                loop.call_soon_threadsafe(out.put_nowait, ("piece", piece))
                if job.cancelled.is_set():
                    break

        def done(result: Any, err: BaseException | None) -> None:
            loop.call_soon_threadsafe(out.put_nowait, ("end", err))

        job = Job(run, done)
        self.submit(job)
        return _drain(out, job, deadline)

    async def call_batched(
        self, batch: Callable[[list[Any]], list[Any]], item: Any, timeout: float
    ) -> Any:
        """``batch([item, ...])``'s result for ``item``, ``item`` run together with the
        other items of the same ``batch`` function that arrive within the window."""
        return await self._settled(lambda done: Job(None, done, batch=batch, item=item), timeout)

    async def _settled(self, make: Callable[[Callable[..., None]], Job], timeout: float) -> Any:
        """Submit the job ``make(done)`` and wait for what it settles its future with;
        TimeoutError after ``timeout`` seconds, and the job is then cancelled."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def done(result: Any, err: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, result, err)

        job = make(done)
        self.submit(job)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except (TimeoutError, asyncio.CancelledError):
            job.cancelled.set()
            raise

    def queued(self) -> int:
        return self._jobs.qsize() + len(self._held)

    def stop(self, timeout: float | None = None) -> None:
        """Finish the queued jobs, then end the thread."""
        self._jobs.put(None)
        self._thread.join(timeout)


async def _drain(out: asyncio.Queue[tuple[str, Any]], job: Job, deadline: float) -> Any:
    loop = asyncio.get_running_loop()
    try:
        while True:
            what, value = await asyncio.wait_for(out.get(), max(0.0, deadline - loop.time()))
            if what == "end":
                if value is not None:
                    raise value
                return
            yield value
    finally:  # also when the client goes away mid-stream
        job.cancelled.set()


def _finish(jobs: list[Job], call: Callable[[], Any]) -> None:
    """Run ``call`` and hand each job its result (a batch: its own one) or the error."""
    try:
        result = call()
    except BaseException as err:  # handed to the waiting requests, which answer it
        for job in jobs:
            job.done(None, err)
        return
    if len(jobs) == 1 and jobs[0].batch is None:
        jobs[0].done(result, None)
        return
    for job, each in zip(jobs, result, strict=True):
        job.done(each, None)


def _settle(future: asyncio.Future[Any], result: Any, err: BaseException | None) -> None:
    if future.done():
        return
    if err is not None:
        future.set_exception(err)
    else:
        future.set_result(result)


# -- counters ------------------------------------------------------------------------------

# Latency histogram buckets (seconds), as Prometheus clients choose them by default.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Requests, latency and generated output, in Prometheus' text format (GET /metrics).
    Updated from the event loop only, so no lock is needed."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], list[float]] = {}
        self.output: dict[tuple[str, str], int] = defaultdict(int)
        self.started = time.time()

    def observe(self, endpoint: str, model: str, status: int, seconds: float) -> None:
        self.requests[endpoint, model, status] += 1
        # per bucket counts, then the sum and the count
        row = self.latency.setdefault((endpoint, model), [0.0] * (len(BUCKETS) + 2))
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                row[i] += 1
        row[-2] += seconds
        row[-1] += 1

    def produced(self, model: str, what: str, count: int) -> None:
        """``count`` more of ``what`` (samples, characters, images, translations)."""
        self.output[model, what] += count

    def text(self, queued: dict[str, int], batches: dict[str, tuple[int, int]]) -> str:
        lines = [
            "# HELP gentool_requests_total HTTP requests answered, by endpoint, model, status.",
            "# TYPE gentool_requests_total counter",
        ]
        for (endpoint, model, status), n in sorted(self.requests.items()):
            labels = f'endpoint="{endpoint}",model="{_label(model)}",status="{status}"'
            lines.append(f"gentool_requests_total{{{labels}}} {n}")
        lines += [
            "# HELP gentool_request_seconds Time to answer a request (a stream: to its end).",
            "# TYPE gentool_request_seconds histogram",
        ]
        for (endpoint, model), row in sorted(self.latency.items()):
            labels = f'endpoint="{endpoint}",model="{_label(model)}"'
            for bound, count in zip(BUCKETS, row, strict=False):
                lines.append(f'gentool_request_seconds_bucket{{{labels},le="{bound}"}} {count:g}')
            lines.append(f'gentool_request_seconds_bucket{{{labels},le="+Inf"}} {row[-1]:g}')
            lines.append(f"gentool_request_seconds_sum{{{labels}}} {row[-2]:.6f}")
            lines.append(f"gentool_request_seconds_count{{{labels}}} {row[-1]:g}")
        lines += [
            "# HELP gentool_output_total What the models produced: samples, characters "
            "(of generated text), images, translations.",
            "# TYPE gentool_output_total counter",
        ]
        for (model, what), n in sorted(self.output.items()):
            lines.append(f'gentool_output_total{{model="{_label(model)}",unit="{what}"}} {n}')
        lines += [
            "# HELP gentool_queued_requests Requests waiting for their model now.",
            "# TYPE gentool_queued_requests gauge",
        ]
        for model, n in sorted(queued.items()):
            lines.append(f'gentool_queued_requests{{model="{_label(model)}"}} {n}')
        lines += [
            "# HELP gentool_batches_total Batches of requests run together (dynamic batching).",
            "# TYPE gentool_batches_total counter",
            "# HELP gentool_batched_requests_total Requests run in those batches.",
            "# TYPE gentool_batched_requests_total counter",
        ]
        for model, (runs, jobs) in sorted(batches.items()):
            lines.append(f'gentool_batches_total{{model="{_label(model)}"}} {runs}')
            lines.append(f'gentool_batched_requests_total{{model="{_label(model)}"}} {jobs}')
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
