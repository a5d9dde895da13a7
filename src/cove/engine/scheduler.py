"""One-at-a-time generation queue between asyncio request handlers and a model.

A llama.cpp context must be driven by one thread at a time. The :class:`Scheduler` owns a worker
thread that runs queued jobs in arrival order; each job's events are handed to the asyncio loop
of the request that submitted it. The queue is bounded: beyond ``max_queue`` waiting jobs,
:meth:`Scheduler.submit` raises :class:`~cove.errors.Overloaded` (HTTP 503) at once. Cancelling a
job (client gone) stops its generation between two tokens, or drops it before it starts.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator

from cove.engine.generate import run_generation
from cove.engine.types import Engine, Finished, GenerationEvent, SamplingParams, Usage
from cove.errors import CoveError, EngineFailure, Overloaded

log = logging.getLogger(__name__)

_SENTINEL = object()


class Job:
    """A submitted generation. Iterate :meth:`events` on the submitting loop; call
    :meth:`cancel` (idempotent, thread-safe) to stop it."""

    def __init__(self, prompt: list[int], params: SamplingParams) -> None:
        self.prompt = prompt
        self.params = params
        self.cancelled = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[object] = asyncio.Queue()

    def cancel(self) -> None:
        self.cancelled.set()

    def _put(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, item)
        except RuntimeError:  # the submitting loop is closed: nobody is listening
            self.cancelled.set()

    async def events(self) -> AsyncIterator[GenerationEvent]:
        """Yield the generation's events; the last is :class:`Finished`.

        Raises:
            CoveError: the engine failed (the job is over).
        """
        try:
            while True:
                item = await self._events.get()
                if item is _SENTINEL:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            self.cancel()


class Scheduler:
    """Runs jobs on ``engine`` one at a time in a daemon worker thread.

    Args:
        engine: the loaded model; only the worker thread calls its ``tokens``.
        max_queue: how many jobs may wait behind the running one before submit refuses.
    """

    def __init__(self, engine: Engine, max_queue: int = 16) -> None:
        self.engine = engine
        self.max_queue = max_queue
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0  # waiting + running
        self._thread = threading.Thread(target=self._work, name="cove-engine", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs waiting or running."""
        return self._pending

    def submit(self, prompt: list[int], params: SamplingParams) -> Job:
        """Queue a generation. Must be called from a running asyncio loop.

        Raises:
            Overloaded: ``max_queue`` jobs already wait behind a running one.
        """
        with self._lock:
            if self._pending > self.max_queue:
                raise Overloaded(
                    f"the server is busy: {self._pending} requests are queued; retry shortly"
                )
            self._pending += 1
        job = Job(prompt, params)
        self._queue.put(job)
        return job

    def close(self) -> None:
        """Stop the worker after the running job; queued jobs are cancelled."""
        self._queue.put(None)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                if job.cancelled.is_set():
                    job._put(Finished("cancelled", Usage(len(job.prompt), 0)))
                    continue
                for event in run_generation(self.engine, job.prompt, job.params, job.cancelled):
                    job._put(event)
            except CoveError as e:
                job._put(e)
            except Exception as e:  # an engine crash must not kill the worker
                log.exception("generation failed")
                job._put(EngineFailure(f"generation failed: {type(e).__name__}: {e}"))
            finally:
                job._put(_SENTINEL)
                with self._lock:
                    self._pending -= 1
