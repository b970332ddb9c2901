"""The receiver's model work: decode + classify in a bounded thread pool, with micro-batching across requests.

Requests are parsed and checked on the event loop (cheap: the body size and image count are bounded first),
then queued as jobs. A dispatcher takes the next job when a worker is free and adds the jobs that are already
waiting (up to ``max_batch_images`` images, waiting at most ``batch_wait_ms`` for more), so under load several
requests are decoded together: the step-by-step decoder costs per step, not per image, so one batch of 16 is
far cheaper than 16 batches of one. ``batching=False`` dispatches one job at a time (for comparison).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from jointcodec.bitstream import Container, CorruptBitstreamError
from jointcodec.entropy.payloads import PayloadDecodeError, decode_latents
from jointcodec.errors import JointCodecError
from jointcodec.serve.codec import Codec


class BusyError(JointCodecError):
    """Too many requests are queued or running; the client should retry later."""


class RequestTimeoutError(JointCodecError):
    """The request's work did not finish within the service's per-request timeout."""


@dataclass
class Job:
    """One request's images, and where its result goes."""

    container: Container
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)
    abandoned: bool = False  # the request timed out before its batch started: skip it

    @property
    def count(self) -> int:
        return self.container.count


@dataclass
class JobResult:
    probabilities: torch.Tensor  # (count, classes)
    decode_s: float  # the batch's decode time (the whole batch: it runs as one)
    classify_s: float
    queue_s: float
    batch_images: int


class ClassifierPool:
    """Decode and classify containers of one ``Codec`` on ``workers`` threads."""

    def __init__(self, codec: Codec, workers: int, max_pending: int, batching: bool, max_batch_images: int,
                 batch_wait_ms: float) -> None:
        self.codec = codec
        self.workers = workers
        self.max_pending = max_pending
        self.batching = batching
        self.max_batch_images = max_batch_images
        self.batch_wait_s = batch_wait_ms / 1000
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jointcodec-worker")
        self.pending = 0  # jobs admitted and not finished (queued or running)
        self.completed = 0
        self.batches = 0
        self._queue: asyncio.Queue[Job] | None = None
        self._dispatcher: asyncio.Task | None = None
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- event-loop side ---------------------------------------------------------------------------
    def _start(self) -> None:
        """Started lazily, on the running loop (works under uvicorn and under FastAPI's TestClient)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._dispatcher is None or self._dispatcher.done():
            self._loop = loop  # a new loop (another TestClient, a restarted server) gets a new dispatcher
            self._queue = asyncio.Queue()
            self._slots = asyncio.Semaphore(self.workers)
            self._dispatcher = loop.create_task(self._dispatch())

    async def classify(self, container: Container, timeout_s: float) -> JobResult:
        """Queue a checked container and wait for its probabilities (BusyError, RequestTimeoutError, or the
        decode's own JointCodecError)."""
        if self.pending >= self.max_pending:
            raise BusyError(f"the service is busy ({self.pending} requests in progress); retry later")
        self._start()
        job = Job(container, asyncio.get_running_loop().create_future())
        self.pending += 1
        job.future.add_done_callback(self._finished)
        self._queue.put_nowait(job)
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout_s)
        except TimeoutError as err:
            job.abandoned = True
            raise RequestTimeoutError(f"the request did not finish within {timeout_s:g} s") from err

    def _finished(self, _future: asyncio.Future) -> None:
        self.pending -= 1
        self.completed += 1

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        carry: Job | None = None
        while True:
            job = carry or await self._queue.get()
            carry = None
            await self._slots.acquire()  # while every worker is busy, jobs pile up: the next batch grows
            batch, images = [job], job.count
            deadline = loop.time() + self.batch_wait_s
            while self.batching and images < self.max_batch_images:
                try:
                    more = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        more = await asyncio.wait_for(self._queue.get(), remaining)
                    except TimeoutError:
                        break
                if images + more.count > self.max_batch_images:
                    carry = more
                    break
                batch.append(more)
                images += more.count
            for dropped in [j for j in batch if j.abandoned]:
                dropped.future.cancel()  # timed out while queued: not worth decoding
            batch = [j for j in batch if not j.future.done()]
            if not batch:
                self._slots.release()
                continue
            self.batches += 1
            work = loop.run_in_executor(self.executor, self._run_batch, batch)
            work.add_done_callback(lambda done, b=batch: self._deliver(b, done))

    def _deliver(self, batch: list[Job], done: asyncio.Future) -> None:
        self._slots.release()
        try:
            results = done.result()
        except Exception as err:  # _run_batch catches everything; this is a last line of defence
            results = [err] * len(batch)
        for job, result in zip(batch, results, strict=True):
            if job.abandoned:
                job.future.cancel()  # nobody waits for it any more
            if job.future.done():
                continue
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)

    async def close(self) -> None:
        """Stop the dispatcher (the app's shutdown); the idle worker threads stay for a later loop."""
        if self._dispatcher is not None and self._loop is asyncio.get_running_loop():
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        self._dispatcher = None

    # --- worker-thread side ------------------------------------------------------------------------
    def _run_batch(self, batch: list[Job]) -> list[JobResult | BaseException]:
        """All jobs' payloads decoded as one batch and classified; a failure is retried job by job so that
        only the bad request fails. Never raises."""
        started = time.perf_counter()
        try:
            return self._decode_and_classify(batch, started)
        except Exception as err:  # returned, not raised: the request gets its error, the worker lives on
            if len(batch) == 1:
                return [err]
            return [_as_error(job, self._decode_and_classify) for job in batch]

    def _decode_and_classify(self, batch: list[Job], started: float | None = None) -> list[JobResult]:
        started = started or time.perf_counter()
        shape = batch[0].container.latent_shape
        payloads = [p for job in batch for p in job.container.payloads]
        try:
            symbols = decode_latents(self.codec.fixed, payloads, shape, threads=1)  # the pool is the parallelism
        except PayloadDecodeError as err:
            raise CorruptBitstreamError(f"corrupt bitstream: a payload does not decode ({err})") from err
        decoded = time.perf_counter()
        with torch.inference_mode():
            probabilities = torch.softmax(self.codec.logits_of_symbols(torch.from_numpy(symbols)), dim=1)
        done = time.perf_counter()
        results, start = [], 0
        for job in batch:
            results.append(JobResult(probabilities[start:start + job.count], decoded - started, done - decoded,
                                     started - job.queued_at, len(payloads)))
            start += job.count
        return results


def _as_error(job: Job, run) -> JobResult | BaseException:
    try:
        return run([job])[0]
    except Exception as err:  # returned, not raised: the request gets its error, the worker lives on
        return err
