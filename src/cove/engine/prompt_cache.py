"""Host-memory cache of KV cells for conversations that lost their slot.

With more conversations than slots, a slot's cells are overwritten while its conversation is
between turns; recomputing that history costs seconds (SmolLM2-135M prefills ~340 tokens/s on
2 cores), while saving and restoring the cells costs milliseconds (llama.cpp's sequence state:
~23 KB a token for this model, restored bit for bit). The idea is llama-server's host prompt
cache (``--cache-ram``); the policy here is ours: entries are evicted least recently used first,
within a byte budget, and an entry is taken out when it is restored (its conversation then lives
in a slot again, and is saved anew if it loses that slot).
"""

from __future__ import annotations

from dataclasses import dataclass

from cove.engine.types import common_prefix


@dataclass
class CacheEntry:
    """The KV state of ``tokens`` as an engine's :meth:`save` returned it."""

    tokens: list[int]
    state: bytearray


class PromptCache:
    """KV states of token sequences within ``budget`` bytes of host memory (0 = off)."""

    def __init__(self, budget: int) -> None:
        self.budget = max(0, budget)
        self._entries: list[CacheEntry] = []  # least recently used first
        self.used = 0

    def __len__(self) -> int:
        return len(self._entries)

    def best(self, prompt: list[int]) -> tuple[CacheEntry | None, int]:
        """The entry sharing the longest prefix with ``prompt``, and that length."""
        best, length = None, 0
        for entry in self._entries:
            n = common_prefix(entry.tokens, prompt)
            if n > length:
                best, length = entry, n
        return best, length

    def holds(self, tokens: list[int]) -> bool:
        """Whether an entry already holds ``tokens`` (or a continuation of them)."""
        return any(e.tokens[: len(tokens)] == tokens for e in self._entries)

    def put(self, tokens: list[int], state: bytearray) -> bool:
        """Keep ``state`` for ``tokens``, evicting the least recently used entries to make
        room and dropping entries that are prefixes of ``tokens``; False when it cannot fit."""
        if not self.budget or len(state) > self.budget:
            return False
        for e in [e for e in self._entries if tokens[: len(e.tokens)] == e.tokens]:
            self._drop(e)
        while self.used + len(state) > self.budget:
            self._drop(self._entries[0])
        self._entries.append(CacheEntry(list(tokens), state))
        self.used += len(state)
        return True

    def take(self, entry: CacheEntry) -> CacheEntry:
        """Remove ``entry`` (about to be restored into a slot) and return it."""
        self._drop(entry)
        return entry

    def _drop(self, entry: CacheEntry) -> None:
        self._entries.remove(entry)
        self.used -= len(entry.state)
