"""Continuous batching between asyncio request handlers and a batched engine.

The :class:`Scheduler` owns one worker thread that drives the engine in steps. Each step:

1. drops cancelled work (queued or running: a disconnected client frees its slot at once);
2. admits waiting requests into free slots, choosing the slot whose KV cells share the longest
   prefix with the prompt (or the least recently used slot, with cells copied from a better one);
3. builds one batch: every decoding sequence's last sampled token first, then prompt chunks of
   sequences still prefilling (capped at ``prefill_chunk`` tokens while others decode, so a long
   prompt never stalls everyone's decoding);
4. runs one ``decode``; samples a token for every sequence that asked for logits, each with its
   own sampler (parameters, seed, grammar, stop sequences stay per request);
5. hands each request's events to the asyncio loop that submitted it (one wake-up per loop per
   step).

Admission control: at most ``n_slots`` run and ``max_queue`` wait; beyond that :meth:`submit`
raises :class:`~cove.errors.Overloaded` (HTTP 503 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from cove.engine.generate import TextStream
from cove.engine.types import (
    Engine,
    Finished,
    FinishReason,
    ForcedContinuation,
    GenerationEvent,
    SamplingParams,
    TextDelta,
    Usage,
    common_prefix,
)
from cove.errors import CoveError, EngineFailure, Overloaded

log = logging.getLogger(__name__)

_SENTINEL = object()
MIN_DONOR_GAIN = 32  # copy another slot's cells only when it saves at least this many tokens


class Job:
    """A submitted generation. Iterate :meth:`events` on the submitting loop; :meth:`cancel`
    (idempotent, thread-safe) stops it."""

    def __init__(self, prompt: list[int], params: SamplingParams, wake: threading.Condition,
                 force: ForcedContinuation | None = None):
        self.prompt = prompt
        self.params = params
        self.force = force
        self.cancelled = threading.Event()
        self.loop = asyncio.get_running_loop()
        self._wake = wake
        self._events: asyncio.Queue[object] = asyncio.Queue()

    def cancel(self) -> None:
        if not self.cancelled.is_set():
            self.cancelled.set()
            with self._wake:
                self._wake.notify()

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


@dataclass
class _Seq:
    job: Job
    slot: int
    pending: list[int]  # prompt tokens still to decode
    text: TextStream
    cached: int = 0  # prompt tokens whose KV cells were reused
    last: int = -1  # last sampled token, fed at the next step
    seen: str = ""  # generated text, kept only while a forced continuation may still apply
    forced: bool = False  # the forced continuation is decided (injected or not needed)
    injected: bool = False


@dataclass
class _Outbox:
    """Events produced in one step, delivered with one wake-up per event loop."""

    items: dict[asyncio.AbstractEventLoop, list[tuple[Job, object]]] = field(default_factory=dict)

    def put(self, job: Job, item: object) -> None:
        self.items.setdefault(job.loop, []).append((job, item))

    def flush(self) -> None:
        for loop, items in self.items.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the loop is closed: nobody listens any more
                for job, _ in items:
                    job.cancelled.set()
        self.items = {}


def _deliver(items: list[tuple[Job, object]]) -> None:
    for job, item in items:
        job._events.put_nowait(item)


class Scheduler:
    """Runs jobs on ``engine`` with continuous batching in a daemon worker thread.

    Args:
        engine: the loaded model; only the worker thread drives it.
        max_queue: how many jobs may wait for a free slot before submit refuses.
        prefill_chunk: most prompt tokens decoded in one step while other sequences decode.
    """

    def __init__(self, engine: Engine, max_queue: int = 16, prefill_chunk: int = 128) -> None:
        self.engine = engine
        self.max_queue = max_queue
        self.prefill_chunk = max(1, min(prefill_chunk, engine.n_batch))
        self._cv = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._active: dict[int, _Seq] = {}
        self._lru: list[int] = list(range(engine.n_slots))  # least recently used first
        self._closing = False
        self._outbox = _Outbox()
        self._thread = threading.Thread(target=self._work, name="cove-engine", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs waiting or running."""
        with self._cv:
            return len(self._waiting) + len(self._active)

    def submit(self, prompt: list[int], params: SamplingParams,
               force: ForcedContinuation | None = None) -> Job:
        """Queue a generation. Must be called from a running asyncio loop. ``force`` is fed
        into the sequence once its condition holds (fed like prompt tokens: no sampling until
        the last one).

        Raises:
            Overloaded: every slot is busy and ``max_queue`` jobs already wait.
        """
        with self._cv:
            busy = len(self._active) >= self.engine.n_slots
            if busy and len(self._waiting) >= self.max_queue:
                raise Overloaded(
                    f"the server is busy: all {len(self._active)} generation slots are in use "
                    f"and {len(self._waiting)} requests are waiting; retry shortly"
                )
            job = Job(prompt, params, self._cv, force)
            self._waiting.append(job)
            self._cv.notify()
        return job

    def close(self) -> None:
        """Stop the worker; running and queued jobs end as cancelled."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout=10)

    # -- worker --------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._closing and not self._active and not self._waiting:
                    self._cv.wait()
                if self._closing:
                    break
                self._drop_cancelled()
                self._admit()
            try:
                self._step()
            except Exception:  # never let the worker die
                log.exception("scheduler step failed")
                for seq in list(self._active.values()):
                    self._end(seq, EngineFailure("generation failed"))
            self._outbox.flush()
        with self._cv:
            for seq in list(self._active.values()):
                self._end(seq, "cancelled")
            while self._waiting:
                self._finish_unstarted(self._waiting.popleft())
        self._outbox.flush()

    def _drop_cancelled(self) -> None:
        for job in [j for j in self._waiting if j.cancelled.is_set()]:
            self._waiting.remove(job)
            self._finish_unstarted(job)
        for seq in [s for s in self._active.values() if s.job.cancelled.is_set()]:
            self._end(seq, "cancelled")

    def _finish_unstarted(self, job: Job) -> None:
        self._outbox.put(job, Finished("cancelled", Usage(len(job.prompt), 0)))
        self._outbox.put(job, _SENTINEL)

    def _admit(self) -> None:
        eng = self.engine
        while self._waiting and len(self._active) < eng.n_slots:
            job = self._waiting.popleft()
            slot, donor = self._choose_slot(job.prompt)
            try:
                n_past = eng.start(slot, job.prompt, job.params, donor)
            except CoveError as e:
                self._outbox.put(job, e)
                self._outbox.put(job, _SENTINEL)
                continue
            text = TextStream(job.params, len(job.prompt), eng.info.n_ctx)
            seq = _Seq(job, slot, job.prompt[n_past:], text, cached=n_past)
            self._active[slot] = seq
            self._lru.remove(slot)
            self._lru.append(slot)
            if text.budget <= 0:
                self._end(seq, "length")

    def _choose_slot(self, prompt: list[int]) -> tuple[int, int | None]:
        """Pick a free slot for ``prompt`` and maybe a donor slot to take KV cells from.

        A free slot whose cells the prompt continues (it shares at least half of them), or which
        holds the whole prompt already, is used as it is. Otherwise the least recently used free
        slot is taken, with the slot sharing the longest prefix as donor: any slot when the
        engine shares cells cheaply, else an idle one and only when that saves at least
        ``MIN_DONOR_GAIN`` tokens.
        """
        free = [s for s in self._lru if s not in self._active]
        shared = {s: common_prefix(self.engine.cached(s), prompt) for s in self._lru}
        best = max(free, key=lambda s: (shared[s], -free.index(s)))
        if shared[best] and (
            shared[best] * 2 >= len(self.engine.cached(best))  # continues this slot's text
            or shared[best] >= len(prompt) - 1  # or repeats a prompt this slot holds whole
        ):
            return best, None
        target = free[0]  # least recently used
        candidates = self._lru if self.engine.shared_kv else free
        donor = max(candidates, key=lambda s: shared[s])
        gain = 1 if self.engine.shared_kv else MIN_DONOR_GAIN
        if donor != target and shared[donor] - shared[target] >= gain:
            return target, donor
        return target, None

    def _step(self) -> None:
        eng = self.engine
        feeds: list[tuple[int, list[int], bool]] = []
        budget = eng.n_batch
        # in slot order: llama.cpp then keeps the whole batch in one micro-batch
        decoding = sorted(
            (s for s in self._active.values() if not s.pending), key=lambda s: s.slot
        )
        for seq in decoding:
            feeds.append((seq.slot, [seq.last], True))
            budget -= 1
        cap = min(budget, self.prefill_chunk) if decoding else budget
        for seq in [s for s in self._active.values() if s.pending]:
            n = min(len(seq.pending), cap)
            if n <= 0:
                break
            done = n == len(seq.pending)
            feeds.append((seq.slot, seq.pending[:n], done))
            seq.pending = seq.pending[n:]
            cap -= n
        if not feeds:
            return
        try:
            eng.decode(feeds)
        except CoveError as e:
            for slot, _, _ in feeds:
                if slot in self._active:
                    self._end(self._active[slot], e)
            return
        for slot, _, want in feeds:
            current = self._active.get(slot)
            if not want or current is None:
                continue
            seq = current
            try:
                token = eng.sample(slot)
                piece = b"" if eng.is_end(token) else eng.piece(token)
                text, reason = seq.text.push(piece, eng.is_end(token))
            except Exception as e:
                log.exception("sampling failed")
                self._end(seq, EngineFailure(f"generation failed: {type(e).__name__}: {e}"))
                continue
            seq.last = token
            if text:
                self._outbox.put(seq.job, TextDelta(text))
            if reason is None and seq.job.force is not None and not seq.forced:
                reason = self._maybe_force(seq, seq.job.force, text, token)
            if reason is not None:
                self._end(seq, reason)

    def _maybe_force(self, seq: _Seq, force: ForcedContinuation, text: str,
                     token: int) -> FinishReason | None:
        """Inject ``force`` into ``seq`` if its condition holds now; the sequence's end
        reason if the injected tokens ended it (a full budget)."""
        seq.seen += text
        if force.until in seq.seen:
            seq.forced = True  # never needed: the end text came by itself
            seq.seen = ""
            return None
        if seq.text.produced < force.after or (force.when and force.when not in seq.seen):
            return None
        seq.forced = seq.injected = True
        seq.seen = ""
        for forced in force.tokens:
            piece, reason = seq.text.push(self.engine.piece(forced), False)
            if piece:
                self._outbox.put(seq.job, TextDelta(piece))
            if reason is not None:
                return reason
        seq.pending = [token, *force.tokens]
        return None

    def _end(self, seq: _Seq, outcome: str | CoveError) -> None:
        """Finish ``seq`` with a reason (``stop``, ``length``, ``cancelled``) or an error."""
        with self._cv:
            self._active.pop(seq.slot, None)
        try:
            self.engine.release(seq.slot)
        except Exception:
            log.exception("release failed")
        if isinstance(outcome, CoveError):
            self._outbox.put(seq.job, outcome)
        else:
            usage = Usage(len(seq.job.prompt), seq.text.produced, seq.cached)
            finished = Finished(outcome, usage, seq.injected)  # type: ignore[arg-type]
            self._outbox.put(seq.job, finished)
        self._outbox.put(seq.job, _SENTINEL)
