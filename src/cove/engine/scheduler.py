"""Continuous batching between asyncio request handlers and a batched engine.

The :class:`Scheduler` owns one worker thread that drives the engine in steps. Each step:

1. drops cancelled work (queued or running: a disconnected client frees its slot at once) and
   refuses jobs past the queue deadline;
2. admits waiting requests into free slots, the client running the fewest jobs first; which
   slot and which KV cells a request starts from (a slot's cells, a copy, the host prompt
   cache) is :mod:`cove.engine.placement`'s choice; a request that shares a prefix with a
   prompt still being prefilled waits for it, then copies it;
3. builds one batch in slot order: every decoding sequence's last sampled token, and prompt
   chunks of sequences still prefilling, shortest remaining prompt first (capped at
   ``prefill_chunk`` tokens while other sequences run, ``lone_prefill_chunk`` alone, so a long
   prompt never stalls the others and a newcomer never waits long for the step in progress;
   while sequences are decoding, also at what keeps the step within ``step_target`` seconds
   at the measured cost of a token, so their answers keep streaming during a long prefill);
4. runs one ``decode``; samples a token for every sequence that asked for logits, each with its
   own sampler (parameters, seed, grammar, stop sequences stay per request);
5. hands each request's events to the asyncio loop that submitted it (one wake-up per loop per
   step).

Admission control: at most ``n_slots`` run and ``max_queue`` wait (a client with fewer jobs
than the busiest one displaces that one's newest waiting job); beyond that :meth:`submit`
raises :class:`~cove.errors.Overloaded` (HTTP 503 with ``Retry-After``), and so does waiting
longer than ``queue_timeout``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from cove.engine.generate import TextStream
from cove.engine.jobs import ADMITTED, SENTINEL, Job, Outbox, send
from cove.engine.placement import Placement
from cove.engine.prompt_cache import PromptCache
from cove.engine.types import (
    Engine,
    Finished,
    FinishReason,
    ForcedContinuation,
    SamplingParams,
    TextDelta,
    Usage,
)
from cove.errors import CoveError, EngineFailure, Overloaded

log = logging.getLogger(__name__)

__all__ = ["Job", "Scheduler"]


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
    began: float = 0.0  # clock time it got its slot


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
        lone_prefill_chunk: most prompt tokens decoded in one step when nothing else runs,
            which bounds how long a request arriving meanwhile waits for the step in progress
            (a 256-token step of SmolLM2-135M takes ~0.7 s on 2 cores; more tokens a step
            gain little prefill speed, see docs/reliability.md).
        queue_timeout: seconds a job may wait for a slot before it is refused with
            :class:`~cove.errors.Overloaded` (0: no deadline).
        step_target: seconds a step should take while sequences are decoding: the prefill
            share of such a step is cut to what fits at the measured seconds per batch token
            (at least ``min_prefill`` tokens), so a long prefill delays each of their tokens
            by about this much instead of ``prefill_chunk`` tokens' worth (0.42 s for 128 on
            SmolLM2-135M with 2 cores, 3.2 ms a token). The chunked-prefill token budget of
            Sarathi-Serve (Agrawal et al., OSDI 2024), set from a time target.
        min_prefill: fewest prompt tokens a step takes from a prefill (its progress).
        clock: monotonic time in seconds (tests pass a scripted one).
        thread: start the worker thread; without it a test drives the scheduler by calling
            :meth:`run_step` itself.

    Fair shares: when several clients (``client`` of :meth:`submit`) wait, a free slot goes
    to the one running the fewest jobs (then the oldest job), and a full queue makes room for
    a client holding fewer jobs than the busiest one by refusing the busiest one's newest
    waiting job, so one client flooding requests cannot starve the others.
    """

    def __init__(self, engine: Engine, max_queue: int = 16, prefill_chunk: int = 128,
                 min_copy_gain: int = 4, prompt_cache_bytes: int = 0,
                 lone_prefill_chunk: int = 256, queue_timeout: float = 0,
                 step_target: float = 0.2, min_prefill: int = 16,
                 clock: Callable[[], float] = time.monotonic, thread: bool = True) -> None:
        self.engine = engine
        self.cache = PromptCache(prompt_cache_bytes)
        self.min_copy_gain = 1 if engine.shared_kv else max(1, min_copy_gain)
        self.max_queue = max_queue
        self.prefill_chunk = max(1, min(prefill_chunk, engine.n_batch))
        self.lone_prefill_chunk = max(1, min(lone_prefill_chunk, engine.n_batch))
        self.queue_timeout = queue_timeout
        self.step_target = step_target
        self.min_prefill = max(1, min(min_prefill, self.prefill_chunk))
        self._token_seconds = 0.0  # moving average of a step's seconds per batch token
        self._clock = clock
        self._cv = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._active: dict[int, _Seq] = {}
        self._place = Placement(engine, self.cache, self.min_copy_gain, self._active)
        self._closing = False
        self._outbox = Outbox()
        self._job_seconds = 0.0  # moving average of how long a job holds its slot
        self._thread: threading.Thread | None = None
        if thread:
            self._thread = threading.Thread(target=self._work, name="cove-engine", daemon=True)
            self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs waiting or running."""
        with self._cv:
            return len(self._waiting) + len(self._active)

    def submit(self, prompt: list[int], params: SamplingParams,
               force: ForcedContinuation | None = None, client: str | None = None) -> Job:
        """Queue a generation. Must be called from a running asyncio loop. ``force`` is fed
        into the sequence once its condition holds (fed like prompt tokens: no sampling until
        the last one). ``client`` names who asks, for fair shares (None: anonymous, one share).

        Raises:
            Overloaded: every slot is busy and ``max_queue`` jobs already wait (and the client
                holds at least as many jobs as any other).
        """
        with self._cv:
            # count the waiting jobs too: a burst submitted while the worker is busy decoding
            # is admitted only at the next step, and must not all be taken meanwhile
            if len(self._active) + len(self._waiting) >= self.engine.n_slots + self.max_queue:
                victim = self._displaced_by(client)
                if victim is None:
                    raise Overloaded(
                        f"the server is busy: {len(self._active)} of {self.engine.n_slots} "
                        f"generation slots are in use and {len(self._waiting)} requests are "
                        "waiting; retry shortly", retry_after=self._retry_after())
                self._waiting.remove(victim)
                send(victim.loop, [(victim, Overloaded(
                    "the server is busy and other clients are waiting: this client has "
                    "more requests queued than its share; retry shortly",
                    retry_after=self._retry_after())), (victim, SENTINEL)])
            job = Job(prompt, params, self._cv, force, client, self._clock())
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
        if self._thread is None:
            self._shutdown()
            return True
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
            self.run_step()
        self._shutdown()

    def run_step(self) -> None:
        """One round of the worker: drop cancelled jobs, refuse those past the queue deadline,
        admit, compact, decode one batch, deliver the events. The worker thread loops on it;
        a test of a scheduler made with ``thread=False`` calls it itself."""
        with self._cv:
            try:
                self._drop_cancelled()
                self._expire()
                self._admit()
                self._place.compact()
            except Exception:  # never let the worker die: every job would hang
                log.exception("scheduler admission failed")
                self._fail_active()
        try:
            self._step()
        except Exception:  # never let the worker die
            log.exception("scheduler step failed")
            self._fail_active()
        self._outbox.flush()

    def _shutdown(self) -> None:
        with self._cv:
            for seq in list(self._active.values()):
                self._end(seq, "cancelled")
            while self._waiting:
                self._finish_unstarted(self._waiting.popleft())
        self._outbox.flush()

    def _retry_after(self) -> int:
        """Seconds until a slot is likely free: the average time a job holds its slot, times
        the jobs queued ahead per slot (1 to 60)."""
        ahead = (len(self._waiting) + 1) / self.engine.n_slots
        return max(1, min(60, math.ceil(self._job_seconds * ahead)))

    def _displaced_by(self, client: str | None) -> Job | None:
        """With the queue full, the waiting job to refuse so that ``client`` gets a place: the
        newest of the client holding the most jobs, when that is at least two more than
        ``client`` holds (so shares converge instead of trading places)."""
        held = Counter(j.client for j in self._waiting)
        held.update(s.job.client for s in self._active.values())
        busiest = max((j.client for j in self._waiting), key=lambda c: held[c], default=None)
        if not self._waiting or busiest == client or held[busiest] < held[client] + 2:
            return None
        return next(j for j in reversed(self._waiting) if j.client == busiest)

    def _expire(self) -> None:
        """Refuse waiting jobs older than the queue deadline (503 with Retry-After)."""
        if not self.queue_timeout:
            return
        now = self._clock()
        for job in [j for j in self._waiting if now - j.submitted >= self.queue_timeout]:
            self._waiting.remove(job)
            self._outbox.end(job, Overloaded(
                f"no generation slot became free within {self.queue_timeout:g} s (the "
                "server is busy); retry shortly", retry_after=self._retry_after()))

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
        self._outbox.end(job, Finished("cancelled", Usage(len(job.prompt), 0)))

    def _admission_order(self) -> list[Job]:
        """Waiting jobs in the order they get slots: the client running the fewest jobs first
        (recounted as each is admitted), then arrival order."""
        running = Counter(s.job.client for s in self._active.values())
        order: list[Job] = []
        rest = list(self._waiting)
        while rest:
            job = min(rest, key=lambda j: (running[j.client], j.number))
            rest.remove(job)
            order.append(job)
            running[job.client] += 1
        return order

    def _admit(self) -> None:
        eng = self.engine
        for job in self._admission_order():
            if len(self._active) >= eng.n_slots:
                break
            if self._place.worth_waiting(job.prompt):
                continue
            self._waiting.remove(job)
            slot, source, entry = self._place.choose(job.prompt)
            try:
                self._place.prepare(slot, source, entry, job.prompt)
                n_past = eng.start(slot, job.prompt, job.params)
                text = TextStream(job.params, len(job.prompt), eng.info.n_ctx)
            except Exception as e:
                if not isinstance(e, CoveError):
                    log.exception("starting a generation failed")
                    e = EngineFailure("generation failed")
                    eng.forget(slot)
                self._outbox.end(job, e)
                continue
            self._outbox.put(job, ADMITTED)
            seq = _Seq(job, slot, job.prompt[n_past:], text, cached=n_past, began=self._clock())
            self._active[slot] = seq
            self._place.touch(slot)
            if text.budget <= 0:
                self._end(seq, "length")

    def _step(self) -> None:
        eng = self.engine
        feeds: list[tuple[int, list[int], bool]] = []
        budget = eng.n_batch
        decoding = [s for s in self._active.values() if not s.pending]
        for seq in decoding:
            feeds.append((seq.slot, [seq.last], True))
            budget -= 1
        # shortest remaining prompt first, so a short request is never stuck behind a long
        # one; the step's prefill share is capped while more than one sequence runs, and a
        # lone prefill's by lone_prefill_chunk (a step in progress delays any newcomer)
        prefilling = sorted((s for s in self._active.values() if s.pending),
                            key=lambda s: len(s.pending))
        cap = min(budget, self._prefill_cap(len(decoding), len(prefilling)))
        for seq in prefilling:
            n = min(len(seq.pending), cap)
            if n <= 0:
                break
            n = eng.cut(seq.pending, n)  # an image chunk that must be decoded whole
            done = n == len(seq.pending)
            feeds.append((seq.slot, seq.pending[:n], done))
            seq.pending = seq.pending[n:]
            cap -= n
        if not feeds:
            return
        feeds.sort(key=lambda f: f[0])  # llama.cpp keeps consecutive slots in one pass
        try:
            began = self._clock()
            eng.decode(feeds)
            self._timed(sum(len(t) for _, t, _ in feeds), self._clock() - began)
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
                logprob = eng.logprobs(slot) if seq.job.params.logprobs is not None else None
                piece = b"" if eng.is_end(token) else eng.piece(token)
                text, reason = seq.text.push(piece, eng.is_end(token), logprob)
            except Exception as e:
                log.exception("sampling failed: %s", type(e).__name__)
                self._end(seq, EngineFailure("generation failed"))
                continue
            seq.last = token
            self._emit(seq, text)
            if reason is None and seq.job.force is not None and not seq.forced:
                reason = self._maybe_force(seq, seq.job.force, text, token)
            if reason is not None:
                self._end(seq, reason)

    def _prefill_cap(self, n_decoding: int, n_prefilling: int) -> int:
        """Most prompt tokens this step takes from prefills: ``lone_prefill_chunk`` when one
        prefill runs alone, ``prefill_chunk`` beside other prefills; beside decoding sequences
        also no more than fits ``step_target`` at the measured cost of a token."""
        if not n_decoding:
            return self.prefill_chunk if n_prefilling > 1 else self.lone_prefill_chunk
        if not self._token_seconds or not self.step_target:
            return self.prefill_chunk
        fits = int(self.step_target / self._token_seconds) - n_decoding
        return max(self.min_prefill, min(self.prefill_chunk, fits))

    def _timed(self, tokens: int, seconds: float) -> None:
        """Record a decode of ``tokens`` batch tokens that took ``seconds`` (steps of fewer
        than 32 tokens are left out: their fixed cost would dominate)."""
        if tokens < 32 or seconds <= 0:
            return
        per = seconds / tokens
        self._token_seconds = per if not self._token_seconds else (
            0.7 * self._token_seconds + 0.3 * per)

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
            self._emit(seq, piece)
            if reason is not None:
                return reason
        seq.pending = [token, *force.tokens]
        return None

    def _emit(self, seq: _Seq, text: str) -> None:
        """Send ``text`` with the log-probabilities of the tokens it completes (if asked)."""
        logprobs = seq.text.take_logprobs()
        if text or logprobs:
            self._outbox.put(seq.job, TextDelta(text, logprobs))

    def _end(self, seq: _Seq, outcome: str | CoveError) -> None:
        """Finish ``seq`` with a reason (``stop``, ``length``, ``cancelled``) or an error."""
        with self._cv:
            self._active.pop(seq.slot, None)
        try:
            self.engine.release(seq.slot)
        except Exception:
            log.exception("release failed")
        held = self._clock() - seq.began
        self._job_seconds = held if not self._job_seconds else (
            0.8 * self._job_seconds + 0.2 * held)
        if isinstance(outcome, CoveError):
            self._outbox.end(seq.job, outcome)
        else:
            usage = Usage(len(seq.job.prompt), seq.text.produced, seq.cached)
            self._outbox.end(seq.job, Finished(outcome, usage, seq.injected,  # type: ignore[arg-type]
                                               seq.text.stop_sequence))
