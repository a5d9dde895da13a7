"""Where a request runs: which slot it takes, which KV cells it starts from, and what happens to
the cells it overwrites. Used by :class:`~cove.engine.scheduler.Scheduler` under its lock.

With a stream per slot (``engine.shared_kv`` False) running requests are kept in contiguous
slots, since llama.cpp splits a batch at every gap (measured on SmolLM2-135M, 2 cores: 8
sequences 33 ms a step, with one gap 43 ms, scattered 64 ms). A prefix shared with another slot
(running or idle) is copied when that saves at least ``min_copy_gain`` tokens of prefill; a
conversation's cells about to be overwritten are saved to the host prompt cache (or, without
one, parked in the idle slot with the oldest content).
"""

from __future__ import annotations

import logging
from typing import Any

from cove.engine.prompt_cache import CacheEntry, PromptCache
from cove.engine.types import Engine, common_prefix
from cove.errors import CoveError

log = logging.getLogger("cove.engine.scheduler")


class Placement:
    """Slot choice and KV-cell bookkeeping for one engine.

    Args:
        engine: the loaded model.
        cache: the host prompt cache (budget 0: off).
        min_copy_gain: least prefill a copy or restore must save, in tokens.
        active: the scheduler's running sequences by slot (shared, not copied: each has
            ``slot``, ``pending`` and ``job.prompt``); :meth:`compact` moves them.
    """

    def __init__(self, engine: Engine, cache: PromptCache, min_copy_gain: int,
                 active: dict[int, Any]) -> None:
        self.engine = engine
        self.cache = cache
        self.min_copy_gain = min_copy_gain
        self.active = active
        self.lru: list[int] = list(range(engine.n_slots))  # least recently used first

    def touch(self, slot: int) -> None:
        """``slot`` now holds the newest content."""
        self.lru.remove(slot)
        self.lru.append(slot)

    def _shared(self, prompt: list[int]) -> list[int]:
        """Per slot: how many leading prompt tokens its cells hold (at most all but the last,
        which is always decoded for its logits)."""
        limit = len(prompt) - 1
        return [min(common_prefix(self.engine.cached(s), prompt), limit)
                for s in range(self.engine.n_slots)]

    def worth_waiting(self, prompt: list[int]) -> bool:
        """Whether a sequence still prefilling will soon hold at least ``min_copy_gain`` more
        of ``prompt`` than any slot holds now (requests arriving together with one system
        prompt: the first computes it, the others copy it a step later)."""
        limit = len(prompt) - 1
        now = max(*self._shared(prompt), min(self.cache.best(prompt)[1], limit))
        return any(
            min(common_prefix(seq.job.prompt, prompt), limit) - now >= self.min_copy_gain
            for seq in self.active.values() if seq.pending
        )

    def _candidates(self) -> list[int]:
        """Free slots a new request may take, oldest content first. With a stream per slot
        only those that keep the running slots contiguous (a hole between them, else a
        neighbour), since llama.cpp splits a batch at every gap."""
        free = [s for s in self.lru if s not in self.active]
        if self.engine.shared_kv or not self.active:
            return free
        lo, hi = min(self.active), max(self.active)
        inner = [s for s in free if lo < s < hi]
        return inner or [s for s in free if s in (lo - 1, hi + 1)] or free

    def choose(self, prompt: list[int]) -> tuple[int, int | None, CacheEntry | None]:
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

    def prepare(self, slot: int, source: int | None, entry: CacheEntry | None,
                 prompt: list[int]) -> None:
        """Keep what ``slot`` holds if the new request mostly overwrites it (see
        :meth:`_evict`), then restore ``entry`` or copy the shared prefix from ``source``."""
        eng = self.engine
        held = eng.cached(slot)
        kept = 0 if source is not None or entry is not None else common_prefix(held, prompt)
        if entry is not None:  # out of the cache first: saving the slot may make room by
            self.cache.take(entry)  # evicting old entries, and must not evict this one
        if kept * 2 < len(held):
            self._evict(slot, avoid=source)
        if entry is not None:
            eng.restore(slot, entry.state, entry.tokens)
            return
        if source is None:
            return
        n = min(common_prefix(eng.cached(source), prompt), len(prompt) - 1)
        continued = n * 2 >= len(eng.cached(source))
        eng.copy(source, slot, n)
        if continued and source not in self.active:  # its cells now live on in ``slot``
            self.lru.remove(source)
            self.lru.insert(0, source)

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
        return len(held) - max((common_prefix(eng.cached(s), held) for s in range(eng.n_slots)
                                if s != slot), default=0)

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
        older = self.lru[: self.lru.index(slot)]
        spare = next((s for s in older if s not in self.active and s != avoid), None)
        if spare is None or self._unique(slot) < self.min_copy_gain:
            return
        eng.copy(slot, spare)
        self.lru.remove(spare)
        self.lru.insert(self.lru.index(slot), spare)

    def compact(self) -> None:
        """With a stream per slot, move running requests so that their slots are contiguous
        again (after one in the middle ended): llama.cpp decodes contiguous slots in one pass
        and splits the batch at every gap (measured: 8 sequences 33 ms a step, with one gap
        43 ms). A move copies one KV stream."""
        if self.engine.shared_kv:
            return
        while len(self.active) >= 2:
            lo, hi = min(self.active), max(self.active)
            hole = next((s for s in range(lo + 1, hi) if s not in self.active), None)
            if hole is None:
                return
            self._evict(hole, avoid=hi)
            self.engine.move(hi, hole)
            seq = self.active.pop(hi)
            seq.slot = hole
            self.active[hole] = seq
            self.lru.remove(hole)
            self.lru.append(hole)
            self.lru.remove(hi)  # holds a stale copy of the moved request's cells
            self.lru.insert(0, hi)
