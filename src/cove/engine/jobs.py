"""A submitted generation as its asyncio caller sees it, and how the scheduler's worker thread
hands it events.

The worker thread never touches an asyncio object directly: each step's events are collected in
an :class:`Outbox` and delivered with one ``call_soon_threadsafe`` per event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from cove.engine.types import ForcedContinuation, GenerationEvent, SamplingParams
from cove.errors import CoveError

SENTINEL = object()  # the job's last item: nothing follows
ADMITTED = object()  # the job got a slot (not queued in its events)

_numbers = itertools.count()


class Job:
    """A submitted generation. Iterate :meth:`events` on the submitting loop; :meth:`cancel`
    (idempotent, thread-safe) stops it.

    ``client`` names who asked (an API key's user, a client address; None: anonymous) for the
    scheduler's per-client shares; ``submitted`` is the scheduler clock's time of submission
    (seconds), for the queue deadline.
    """

    def __init__(self, prompt: list[int], params: SamplingParams, wake: threading.Condition,
                 force: ForcedContinuation | None = None, client: str | None = None,
                 submitted: float | None = None) -> None:
        self.prompt = prompt
        self.params = params
        self.force = force
        self.client = client
        self.submitted = time.monotonic() if submitted is None else submitted
        self.number = next(_numbers)  # arrival order
        self.cancelled = threading.Event()
        self.loop = asyncio.get_running_loop()
        self._wake = wake
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._admitted = asyncio.Event()
        self._refused: CoveError | None = None

    def cancel(self) -> None:
        if not self.cancelled.is_set():
            self.cancelled.set()
            with self._wake:
                self._wake.notify()

    async def admitted(self) -> None:
        """Wait until the job has a slot (or ended without one: cancelled, which returns too).

        Raises:
            CoveError: it ended before getting a slot (queue deadline: Overloaded; displaced
                by another client's fair share: Overloaded; its start failed).
        """
        await self._admitted.wait()
        if self._refused is not None:
            raise self._refused

    async def events(self) -> AsyncIterator[GenerationEvent]:
        """Yield the generation's events; the last is :class:`Finished`.

        Raises:
            CoveError: the engine failed or the job was refused (the job is over).
        """
        try:
            while True:
                item = await self._events.get()
                if item is SENTINEL:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            self.cancel()

    def _receive(self, item: object) -> None:
        """Take one item from the worker (on the job's loop)."""
        if item is ADMITTED:
            self._admitted.set()
            return
        if not self._admitted.is_set():  # ended before it had a slot
            if isinstance(item, CoveError):
                self._refused = item
            self._admitted.set()
        self._events.put_nowait(item)


@dataclass
class Outbox:
    """Events produced in one step, delivered with one wake-up per event loop."""

    items: dict[asyncio.AbstractEventLoop, list[tuple[Job, object]]] = field(default_factory=dict)

    def put(self, job: Job, item: object) -> None:
        self.items.setdefault(job.loop, []).append((job, item))

    def end(self, job: Job, item: object) -> None:
        """``item`` (an error or the :class:`Finished` event) and then the end of the job."""
        self.put(job, item)
        self.put(job, SENTINEL)

    def flush(self) -> None:
        items, self.items = self.items, {}
        for loop, batch in items.items():
            send(loop, batch)


def send(loop: asyncio.AbstractEventLoop, items: list[tuple[Job, object]]) -> None:
    """Deliver ``items`` on ``loop`` (any thread); a closed loop's jobs are cancelled."""
    try:
        loop.call_soon_threadsafe(_deliver, items)
    except RuntimeError:  # the loop is closed: nobody listens any more
        for job, _ in items:
            job.cancelled.set()


def _deliver(items: list[tuple[Job, object]]) -> None:
    for job, item in items:
        job._receive(item)
