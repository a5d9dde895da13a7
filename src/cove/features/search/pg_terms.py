"""How many passages a word matches on PostgreSQL, estimated from the planner's statistics
instead of counted, for large indexes.

Choosing the words of a keyword search (:func:`cove.features.search.index.select_terms`) and
their IDF needs each word's passage count. Counting ``tsv @@ word`` visits every matching row
(a GIN bitmap scan cannot skip the heap), so at 100,000 passages the six or seven counts of a
question cost more than the search itself. PostgreSQL already keeps what is needed: ANALYZE of
a ``tsvector`` column stores its most common lexemes with the share of rows holding each
(``pg_stats.most_common_elems`` / ``most_common_elem_freqs``: about ten times the statistics
target, 1,000 by default; the array of shares ends with their minimum, maximum and the share
of NULLs). A lexeme in the list matches ``share × rows`` passages; one not in it is rarer than
the least common listed, and is given half that minimum, as PostgreSQL's own selectivity
estimate for ``@@`` does (``tsmatchsel`` in ``src/backend/tsearch/ts_selfuncs.c``).

A word becomes lexemes by ``to_tsvector('english', word)`` (one query for all the words of a
question); a word with no lexeme is a stop word of PostgreSQL's English configuration (None:
it cannot be searched); a word of several lexemes (``call_soon``) matches no more than its
rarest. The statistics are read again every :data:`STATS_SECONDS` (autovacuum re-analyses the
table as it grows). Below :data:`MIN_PASSAGES` passages, or before the first ANALYZE, the
caller counts instead (exact, and cheap at that size).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

MIN_PASSAGES = 20_000  # smaller indexes are counted exactly
STATS_SECONDS = 30.0  # how long statistics read from pg_stats are used


@dataclass(frozen=True)
class Stats:
    """The planner's view of ``search_chunks.tsv``: ``passages`` (its row estimate), the
    share of rows holding each common lexeme, and ``floor``, the least share listed."""

    passages: int
    shares: dict[str, float]
    floor: float


_cache: dict[str, Stats | None] = {}
_read_at: dict[str, float] = {}
_lock = threading.Lock()


def _read(s: Session) -> Stats | None:
    passages = int(s.scalar(text("SELECT reltuples::bigint FROM pg_class "
                                 "WHERE oid = 'search_chunks'::regclass")) or 0)
    if passages < MIN_PASSAGES:
        return None
    row = s.execute(text(
        "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
        "WHERE schemaname = current_schema() AND tablename = 'search_chunks' "
        "AND attname = 'tsv'")).first()
    if row is None or not row[0] or not row[1]:
        return None
    elems, freqs = list(row[0]), [float(f) for f in row[1]]
    shares = dict(zip(elems, freqs[:len(elems)], strict=True))
    floor = freqs[len(elems)] if len(freqs) > len(elems) else min(shares.values())
    return Stats(passages, shares, floor)


def stats(s: Session) -> Stats | None:
    """The statistics of the session's database (cached :data:`STATS_SECONDS`), or None when
    the index is small or not analysed yet."""
    key = s.get_bind().engine.url.render_as_string(hide_password=True)
    now = time.monotonic()
    with _lock:
        if key in _cache and now - _read_at[key] < STATS_SECONDS:
            return _cache[key]
    found = _read(s)
    with _lock:
        _cache[key], _read_at[key] = found, now
    return found


def estimates(s: Session, found: Stats, words: Sequence[str]) -> dict[str, int | None]:
    """Estimated passage counts of ``words`` (None for a word PostgreSQL cannot search), one
    query for their lexemes."""
    stmt = text(
        "SELECT w, array_to_string(tsvector_to_array(to_tsvector('english', w)), ' ') "
        "FROM unnest(:words) AS w").bindparams(bindparam("words", type_=ARRAY(Text)))
    lexemes = {w: (lx or "").split() for w, lx in s.execute(stmt, {"words": list(words)})}
    out: dict[str, int | None] = {}
    for w in words:
        parts = lexemes.get(w) or []
        if not parts:
            out[w] = None
            continue
        share = min(found.shares.get(p, found.floor / 2) for p in parts)
        out[w] = round(share * found.passages)
    return out
