"""Continuous batching between asyncio request handlers and a batched engine.

The :class:`Scheduler` owns one worker thread that drives the engine in steps. Each step:

1. drops cancelled work (queued or running: a disconnected client frees its slot at once);
2. admits waiting requests into free slots: a slot whose KV cells the prompt continues, or else
   one with cells copied from the slot (running or idle) that shares the longest prefix, or
   restored from the host prompt cache; a request that shares a prefix with a prompt still
   being prefilled waits for it, then copies it. With a stream per slot the running slots are
   kept contiguous (new requests fill gaps, running ones are moved into gaps). A conversation's
   cells about to be overwritten are first saved to the host prompt cache (or, without one,
   parked in the slot with the oldest content);
3. builds one batch in slot order: every decoding sequence's last sampled token, and prompt
   chunks of sequences still prefilling (capped at ``prefill_chunk`` tokens while others
   decode, so a long prompt never stalls everyone's decoding);
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
from cove.engine.prompt_cache import CacheEntry, PromptCache
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
        min_copy_gain: with a stream per slot, copy KV cells between slots only when that
            saves at least this many tokens of prefill (a copy moves a whole stream; measured
            on SmolLM2-135M with 2 cores: 3 ms for 1024 cells, 11 ms for 4096, while prefill
            takes 3 ms a token). With a shared pool a copy is free and any gain counts.
        prompt_cache_bytes: host memory for the KV cells of conversations that lose their slot
            (see :mod:`cove.engine.prompt_cache`); 0 parks them in idle slots only.
    """

    def __init__(self, engine: Engine, max_queue: int = 16, prefill_chunk: int = 128,
                 min_copy_gain: int = 4, prompt_cache_bytes: int = 0) -> None:
        self.engine = engine
        self.cache = PromptCache(prompt_cache_bytes)
        self.min_copy_gain = 1 if engine.shared_kv else max(1, min_copy_gain)
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
            # count the waiting jobs too: a burst submitted while the worker is busy decoding
            # is admitted only at the next step, and must not all be taken meanwhile
            if len(self._active) + len(self._waiting) >= self.engine.n_slots + self.max_queue:
                raise Overloaded(
                    f"the server is busy: {len(self._active)} of {self.engine.n_slots} "
                    f"generation slots are in use and {len(self._waiting)} requests are "
                    "waiting; retry shortly"
                )
            job = Job(prompt, params, self._cv, force)
            self._waiting.append(job)
            self._cv.notify()
        return job

    def close(self, timeout: float = 10) -> bool:
        """Stop the worker; running and queued jobs end as cancelled. Returns whether the
        worker stopped within ``timeout`` seconds (if not, it is still inside a decode step and
        the engine must not be freed under it)."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout=timeout)
        return not self._thread.is_alive()

    # -- worker --------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._closing and not self._active and not self._waiting:
                    self._cv.wait()
                if self._closing:
                    break
                try:
                    self._drop_cancelled()
                    self._admit()
                    self._compact()
                except Exception:  # never let the worker die: every job would hang
                    log.exception("scheduler admission failed")
                    self._fail_active()
            try:
                self._step()
            except Exception:  # never let the worker die
                log.exception("scheduler step failed")
                self._fail_active()
            self._outbox.flush()
        with self._cv:
            for seq in list(self._active.values()):
                self._end(seq, "cancelled")
            while self._waiting:
                self._finish_unstarted(self._waiting.popleft())
        self._outbox.flush()

    def _fail_active(self) -> None:
        """End every running job with an error after an unexpected engine exception; their
        slots' cells are dropped, since the engine may have changed them half-way."""
        for seq in list(self._active.values()):
            self._end(seq, EngineFailure("generation failed"))
            try:
                self.engine.forget(seq.slot)
            except Exception:
                log.exception("forget failed")

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
        for job in list(self._waiting):
            if len(self._active) >= eng.n_slots:
                break
            if self._worth_waiting(job.prompt):
                continue
            self._waiting.remove(job)
            slot, source, entry = self._choose_slot(job.prompt)
            try:
                self._prepare(slot, source, entry, job.prompt)
                n_past = eng.start(slot, job.prompt, job.params)
                text = TextStream(job.params, len(job.prompt), eng.info.n_ctx)
            except Exception as e:
                if not isinstance(e, CoveError):
                    log.exception("starting a generation failed")
                    e = EngineFailure(f"generation failed: {type(e).__name__}: {e}")
                    eng.forget(slot)
                self._outbox.put(job, e)
                self._outbox.put(job, _SENTINEL)
                continue
            seq = _Seq(job, slot, job.prompt[n_past:], text, cached=n_past)
            self._active[slot] = seq
            self._lru.remove(slot)
            self._lru.append(slot)
            if text.budget <= 0:
                self._end(seq, "length")

    def _shared(self, prompt: list[int]) -> list[int]:
        """Per slot: how many leading prompt tokens its cells hold (at most all but the last,
        which is always decoded for its logits)."""
        limit = len(prompt) - 1
        return [min(common_prefix(self.engine.cached(s), prompt), limit)
                for s in range(self.engine.n_slots)]

    def _worth_waiting(self, prompt: list[int]) -> bool:
        """Whether a sequence still prefilling will soon hold at least ``min_copy_gain`` more
        of ``prompt`` than any slot holds now (requests arriving together with one system
        prompt: the first computes it, the others copy it a step later)."""
        limit = len(prompt) - 1
        now = max(*self._shared(prompt), min(self.cache.best(prompt)[1], limit))
        return any(
            min(common_prefix(seq.job.prompt, prompt), limit) - now >= self.min_copy_gain
            for seq in self._active.values() if seq.pending
        )

    def _candidates(self) -> list[int]:
        """Free slots a new request may take, oldest content first. With a stream per slot
        only those that keep the running slots contiguous (a hole between them, else a
        neighbour), since llama.cpp splits a batch at every gap."""
        free = [s for s in self._lru if s not in self._active]
        if self.engine.shared_kv or not self._active:
            return free
        lo, hi = min(self._active), max(self._active)
        inner = [s for s in free if lo < s < hi]
        return inner or [s for s in free if s in (lo - 1, hi + 1)] or free

    def _choose_slot(self, prompt: list[int]) -> tuple[int, int | None, CacheEntry | None]:
        """Pick a free slot for ``prompt``, and maybe a source of KV cells for it: a slot to
        copy from, or a host-cache entry to restore.

        Among the candidate slots, one whose cells the prompt continues (it shares at least
        half of them, or holds the whole prompt) is used as it is; otherwise the one with the
        oldest content. The slot (running or idle) or cache entry sharing the longest prefix
        is the source when that saves at least ``min_copy_gain`` tokens of prefill.
        """
        eng = self.engine
        shared = self._shared(prompt)
        candidates = self._candidates()
        continued = [s for s in candidates if shared[s] and (
            shared[s] * 2 >= len(eng.cached(s)) or shared[s] >= len(prompt) - 1)]
        slot = max(continued, key=lambda s: shared[s]) if continued else candidates[0]
        source = max(range(eng.n_slots), key=lambda s: shared[s])
        entry, cached = self.cache.best(prompt)
        if entry is not None and min(cached, len(prompt) - 1) - max(
                shared[source], shared[slot]) >= self.min_copy_gain:
            return slot, None, entry
        if source != slot and shared[source] - shared[slot] >= self.min_copy_gain:
            return slot, source, None
        return slot, None, None

    def _prepare(self, slot: int, source: int | None, entry: CacheEntry | None,
                 prompt: list[int]) -> None:
        """Keep what ``slot`` holds if the new request mostly overwrites it (see
        :meth:`_evict`), then restore ``entry`` or copy the shared prefix from ``source``."""
        eng = self.engine
        held = eng.cached(slot)
        kept = 0 if source is not None or entry is not None else common_prefix(held, prompt)
        if kept * 2 < len(held):
            self._evict(slot, avoid=source)
        if entry is not None:
            self.cache.take(entry)
            eng.restore(slot, entry.state, entry.tokens)
            return
        if source is None:
            return
        n = min(common_prefix(eng.cached(source), prompt), len(prompt) - 1)
        continued = n * 2 >= len(eng.cached(source))
        eng.copy(source, slot, n)
        if continued and source not in self._active:  # its cells now live on in ``slot``
            self._lru.remove(source)
            self._lru.insert(0, source)

    def _evict(self, slot: int, avoid: int | None) -> None:
        """The cells of idle ``slot`` are about to be overwritten: keep them, when at least
        ``min_copy_gain`` of its tokens are held nowhere else, in the host cache (when it has
        a budget) or else by parking them in another slot (:meth:`_park`)."""
        if self.cache.budget:
            self._save(slot)
        else:
            self._park(slot, avoid)

    def _unique(self, slot: int) -> int:
        """How many of ``slot``'s tokens no other slot holds."""
        eng = self.engine
        held = eng.cached(slot)
        return len(held) - max(common_prefix(eng.cached(s), held) for s in range(eng.n_slots)
                               if s != slot)

    def _save(self, slot: int) -> None:
        """Save ``slot``'s cells to the host cache if they are worth it and not there yet."""
        held = self.engine.cached(slot)
        if self._unique(slot) < self.min_copy_gain or self.cache.holds(held):
            return
        try:
            self.cache.put(list(held), self.engine.save(slot))
        except CoveError:
            log.exception("could not save a slot to the prompt cache")

    def _park(self, slot: int, avoid: int | None) -> None:
        """Copy the cells of idle ``slot`` into the idle slot with the oldest content, when
        that content is older than ``slot``'s and at least ``min_copy_gain`` of ``slot``'s
        tokens are held nowhere else: a conversation's cache survives a busy moment without a
        host cache."""
        eng = self.engine
        older = self._lru[: self._lru.index(slot)]
        spare = next((s for s in older if s not in self._active and s != avoid), None)
        if spare is None or self._unique(slot) < self.min_copy_gain:
            return
        eng.copy(slot, spare)
        self._lru.remove(spare)
        self._lru.insert(self._lru.index(slot), spare)

    def _compact(self) -> None:
        """With a stream per slot, move running requests so that their slots are contiguous
        again (after one in the middle ended): llama.cpp decodes contiguous slots in one pass
        and splits the batch at every gap (measured: 8 sequences 33 ms a step, with one gap
        43 ms). A move copies one KV stream."""
        if self.engine.shared_kv:
            return
        while len(self._active) >= 2:
            lo, hi = min(self._active), max(self._active)
            hole = next((s for s in range(lo + 1, hi) if s not in self._active), None)
            if hole is None:
                return
            self._evict(hole, avoid=hi)
            self.engine.move(hi, hole)
            seq = self._active.pop(hi)
            seq.slot = hole
            self._active[hole] = seq
            self._lru.remove(hole)
            self._lru.append(hole)
            self._lru.remove(hi)  # holds a stale copy of the moved request's cells
            self._lru.insert(0, hi)

    def _step(self) -> None:
        eng = self.engine
        feeds: list[tuple[int, list[int], bool]] = []
        budget = eng.n_batch
        decoding = [s for s in self._active.values() if not s.pending]
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
        feeds.sort(key=lambda f: f[0])  # llama.cpp keeps consecutive slots in one pass
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
            finished = Finished(outcome, usage, seq.injected,  # type: ignore[arg-type]
                                seq.text.stop_sequence)
            self._outbox.put(seq.job, finished)
        self._outbox.put(seq.job, _SENTINEL)
