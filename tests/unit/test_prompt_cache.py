"""The host prompt cache's bookkeeping: longest prefix, byte budget, LRU eviction."""

from __future__ import annotations

from cove.engine.prompt_cache import PromptCache


def test_best_entry_is_the_longest_shared_prefix() -> None:
    cache = PromptCache(100)
    cache.put([1, 2, 3], bytearray(10))
    cache.put([1, 5, 6, 7], bytearray(10))
    entry, n = cache.best([1, 5, 6, 9])
    assert entry is not None and entry.tokens == [1, 5, 6, 7] and n == 3
    assert cache.best([8, 8]) == (None, 0)


def test_budget_evicts_least_recently_used_and_prefixes() -> None:
    cache = PromptCache(30)
    cache.put([1], bytearray(10))
    cache.put([2], bytearray(10))
    cache.put([1, 1], bytearray(10))  # continues [1]: replaces it
    assert sorted(e.tokens for e in cache._entries) == [[1, 1], [2]] and cache.used == 20
    cache.put([3], bytearray(10))
    cache.put([4], bytearray(10))  # full: [2] is the oldest
    assert sorted(e.tokens for e in cache._entries) == [[1, 1], [3], [4]]
    assert cache.used == 30
    assert not cache.put([5], bytearray(31))  # larger than the whole budget
    assert cache.holds([1]) and not cache.holds([2])


def test_taken_entries_leave_the_cache_and_zero_budget_is_off() -> None:
    cache = PromptCache(100)
    cache.put([1, 2], bytearray(40))
    entry, _ = cache.best([1, 2, 3])
    assert entry is not None and cache.take(entry).tokens == [1, 2]
    assert len(cache) == 0 and cache.used == 0
    assert not PromptCache(0).put([1], bytearray(1))
