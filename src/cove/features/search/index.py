"""Ranking chunks: keyword ranks from the database's full-text index, vector ranks by cosine
similarity (numpy), fused by reciprocal rank fusion.

Keyword search covers a passage's heading path and its text (migration 0010), the heading
weighted more (:data:`FTS5_HEADING_WEIGHT`, :data:`PG_HEADING_WEIGHT`). It never hands user
text to a query language: the query is cut into word tokens, stop words and the commonest words
left out (:func:`select_terms`, the same on both databases), and on SQLite each word becomes a
quoted FTS5 string (``"word"``, quotes doubled) joined with ``OR`` and ranked by ``bm25()``; on
PostgreSQL the words go to ``websearch_to_tsquery('english', ...)`` joined with ``or`` (which
never raises on any input) and are ranked by the sum of each word's ``ts_rank`` times its IDF.

Reciprocal rank fusion: G. V. Cormack, C. L. A. Clarke and S. Büttcher, "Reciprocal rank fusion
outperforms Condorcet and individual rank learning methods", SIGIR 2009 — each list adds
``1 / (60 + rank)`` (rank from 1) to a chunk's score.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from cove import embeddings
from cove.features.search import pg_terms
from cove.features.search.store import Chunk

# "+heading": a passage is embedded with its heading path in front (see passage_text)
EMBEDDER = f"wordllama/l2_supercat-{embeddings.DIMENSIONS}+heading"
RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)


def embed(texts: list[str]) -> np.ndarray:
    """Unit vectors ``(len(texts), DIMENSIONS)`` float32 of the core embedder."""
    return embeddings.embed(texts)


def passage_text(heading: str, body: str) -> str:
    """What is embedded for a passage: its heading path (which names the page and section it
    comes from), a line break, its text. Sections deep in a page rarely repeat the page's
    subject; with the heading, questions find them by meaning much more often (on the Python
    documentation benchmark, bench/retrieval.py, vector-only recall@5 rose from 0.83 to
    0.89)."""
    return f"{heading}\n{body}" if heading else body


def words(query: str, limit: int = 64) -> list[str]:
    """The word tokens of ``query`` (at most ``limit``), lower-cased."""
    return [w.lower() for w in _WORD.findall(query)][:limit]


def fts5_query(query: str, terms: Sequence[str] | None = None) -> str:
    """An FTS5 MATCH expression matching any word of ``query`` (or of ``terms``), each a
    quoted string; ``""`` when it has no words."""
    return " OR ".join('"' + w.replace('"', '""') + '"'
                       for w in (words(query) if terms is None else terms))


# Lucene's classic English stop set plus question words: they match nearly every passage,
# so scoring them costs the most and ranks the least (BM25 gives them almost no weight)
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with how what which who whom when where why do "
    "does did i me my you your we our can could would should".split())
MATCH_BUDGET = 10_000
# How much more a query word counts in a passage's heading path than in its text. The two
# engines score differently, so each has its own, measured on bench/retrieval.py (see
# docs/retrieval.md). SQLite: bm25() column weights (heading, text).
FTS5_HEADING_WEIGHT = 5.0
# PostgreSQL: the heading is labelled A (weight 1.0), the text B (1 / PG_HEADING_WEIGHT;
# ts_rank takes no weight above 1).
PG_HEADING_WEIGHT = 2.0


def idf(passages: int, matching: int) -> float:
    """The inverse document frequency of a word in ``matching`` of ``passages`` passages:
    Lucene's BM25 IDF ``ln(1 + (N - n + 0.5) / (n + 0.5))``, never negative (Robertson and
    Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009). ``matching``
    over ``passages`` (an estimated passage count that lags an ingest) counts as all."""
    matching = min(matching, passages)
    return math.log(1 + (passages - matching + 0.5) / (matching + 0.5))


def select_terms(query: str, frequency: Callable[[str], int | None],
                 budget: int = MATCH_BUDGET) -> list[str]:
    """The words of ``query`` worth a keyword search, in query order: without stop words
    (unless that leaves none), then the rarest first (``frequency(word)``: how many passages
    it matches, or None for a word the index cannot search, such as PostgreSQL's own stop
    words, which are dropped) while their matches add up to at most ``budget`` — always at
    least the rarest one. Both full-text engines score every passage a query matches, so at
    100,000 passages a common word would make one search cost hundreds of milliseconds while
    moving the top results little (its IDF is small). ``frequency`` may stop counting past
    ``budget`` (any count over it is treated alike)."""
    distinct = list(dict.fromkeys(words(query)))
    terms = [w for w in distinct if w not in STOPWORDS] or distinct
    if len(terms) < 2:
        return terms
    found = {w: frequency(w) for w in terms}
    df = {w: n for w, n in found.items() if n is not None}
    kept: list[str] = []
    total = 0
    for w in sorted(df, key=lambda w: df[w]):
        if kept and total + df[w] > budget:
            break
        kept.append(w)
        total += df[w]
    return [w for w in terms if w in kept]


def pg_query(terms: Sequence[str]) -> str:
    """A ``websearch_to_tsquery`` text matching any of ``terms`` (its ``or``; the word "or"
    itself, an operator there, left out)."""
    return " or ".join(w for w in terms if w != "or")


def document_frequency(s: Session, word: str, cap: int | None = None) -> int | None:
    """How many passages (of every collection) the keyword index matches ``word`` in, heading
    or text, counting at most ``cap`` (None: all): an FTS5 count on SQLite, a ``tsv @@``
    count through the GIN index on PostgreSQL. None on PostgreSQL for a word its English
    configuration drops (a stop word of its own: its tsquery is empty, and ranking by it
    would only make PostgreSQL raise a notice for every passage). Counting stops at ``cap``
    because a common word's full count costs more than the search itself (at 100,000
    passages, 40 ms for a word in half of them)."""
    limit = "" if cap is None else " LIMIT :cap"
    if s.get_bind().dialect.name == "sqlite":
        sql = ("SELECT count(*) FROM (SELECT 1 FROM search_chunks_fts "
               f"WHERE search_chunks_fts MATCH :q{limit})")
        return int(s.scalar(text(sql), {"q": fts5_query("", [word]), "cap": cap}) or 0)
    q = pg_query([word])
    if not q:
        return None
    row = s.execute(text(
        "SELECT numnode(query), (SELECT count(*) FROM (SELECT 1 FROM search_chunks "
        f"WHERE tsv @@ query{limit}) matched) "
        "FROM websearch_to_tsquery('english', :q) query"), {"q": q, "cap": cap}).one()
    return None if not row[0] else int(row[1] or 0)


def keyword_terms(s: Session, query: str, budget: int | None = None,
                  counts: dict[str, int] | None = None) -> list[str]:
    """:func:`select_terms` with each word's count from the database's keyword index (budget
    :data:`MATCH_BUDGET` unless given; counted up to just over it, or on a large PostgreSQL
    index estimated from the planner's statistics, :mod:`.pg_terms`); the counts it read are
    put in ``counts`` (exact for the words kept, but for a lone rarest word over budget)."""
    found = {} if counts is None else counts
    cap = (MATCH_BUDGET if budget is None else budget) + 1
    planner = pg_terms.stats(s) if s.get_bind().dialect.name == "postgresql" else None
    guessed: dict[str, int | None] = {}
    if planner is not None:  # a large PostgreSQL index: estimated, not counted
        guessed = pg_terms.estimates(s, planner, list(dict.fromkeys(words(query))))

    def frequency(word: str) -> int | None:
        n = guessed.get(word) if planner is not None else document_frequency(s, word, cap)
        if n is not None:
            found[word] = n
        return n

    return select_terms(query, frequency, cap - 1)


def passage_count(s: Session) -> int:
    """How many passages the index holds, for IDF: PostgreSQL's planner estimate
    (``pg_class.reltuples``, kept by autovacuum and ANALYZE; a count of 100,000 rows costs
    milliseconds on every search) once the table has been analysed, else ``count(*)``."""
    if s.get_bind().dialect.name == "postgresql":
        planner = pg_terms.stats(s)
        if planner is not None:
            return planner.passages
        estimate = s.scalar(text("SELECT reltuples::bigint FROM pg_class "
                                 "WHERE oid = 'search_chunks'::regclass"))
        if estimate is not None and estimate > 0:
            return int(estimate)
    return int(s.scalar(text("SELECT count(*) FROM search_chunks")) or 0)


def _pg_order(s: Session, terms: Sequence[str],
              counts: dict[str, int]) -> tuple[str, dict[str, Any]]:
    """PostgreSQL's score of a passage for ``terms``, as SQL and its parameters: the sum over
    the words of ``idf(word) * ts_rank(weights, tsv, word)``. ``ts_rank`` alone weighs every
    word the same (it has no notion of how rare a word is), so common words that survive
    :func:`select_terms` would rank as high as the rare ones that name the subject; with the
    IDF the sum is close to BM25 (SQLite's ``bm25()``). A single word needs no IDF (it scales
    every score alike)."""
    passages = passage_count(s) if len(terms) > 1 else 0
    weights = f"'{{0.1, 0.2, {1 / PG_HEADING_WEIGHT!r}, 1.0}}'::float4[]"  # labels D, C, B, A
    parts: list[str] = []
    params: dict[str, Any] = {}
    for i, word in enumerate(terms):
        parts.append(f":w{i} * ts_rank({weights}, tsv, websearch_to_tsquery('english', :t{i}))")
        params[f"t{i}"] = word
        params[f"w{i}"] = idf(passages, counts[word]) if passages and word in counts else 1.0
    return " + ".join(parts), params


def keyword_ranks(s: Session, collection_ids: Sequence[int], query: str,
                  limit: int) -> list[int]:
    """Chunk ids in ``collection_ids`` matching ``query`` by keyword (the words
    :func:`keyword_terms` keeps, in heading path or text), best first."""
    if not collection_ids or not words(query):
        return []
    ids: BindParameter[list[int]] = bindparam("ids", expanding=True)
    counts: dict[str, int] = {}
    terms = keyword_terms(s, query, counts=counts)
    params: dict[str, Any] = {}
    if s.get_bind().dialect.name == "sqlite":
        # INDEXED BY: the collection test reads the (collection_id, rowid) index, not the
        # chunk rows with their text and vectors (3x faster at 100,000 passages)
        stmt = text(
            "SELECT c.id FROM search_chunks_fts f JOIN search_chunks c "
            "INDEXED BY ix_search_chunks_collection ON c.id = f.rowid "
            "WHERE search_chunks_fts MATCH :q AND c.collection_id IN :ids "
            f"ORDER BY bm25(search_chunks_fts, {FTS5_HEADING_WEIGHT!r}, 1.0) "
            "LIMIT :limit").bindparams(ids)
        q = fts5_query("", terms)
    else:
        q = pg_query(terms)
        order, params = _pg_order(s, [w for w in terms if w != "or"], counts)
        stmt = text(
            "SELECT id FROM search_chunks, websearch_to_tsquery('english', :q) query "
            "WHERE tsv @@ query AND collection_id IN :ids "
            f"ORDER BY {order or '1'} DESC, id LIMIT :limit").bindparams(ids)
    if not q:
        return []
    return [int(r[0]) for r in s.execute(stmt, {"q": q, "ids": list(collection_ids),
                                                "limit": limit, **params})]


class _VectorCache:
    """The vectors of recently searched collections, as one ``(ids, matrix)`` per set of
    collections, so that a search does not read every vector from the database again (at
    100,000 passages that read alone takes longer than the whole search should).

    An entry's key is the set's documents (id and creation time) and the embedder: documents
    never change once written (a file added again is a new document), so adding or deleting
    one changes the key and the next search reads the vectors afresh. At most
    :data:`VECTOR_CACHE_ROWS` vectors are kept (about 1 KB each), least recently used first
    out.
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.entries: OrderedDict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = \
            OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray] | None:
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], ids: np.ndarray, matrix: np.ndarray) -> None:
        with self.lock:
            self.entries[key] = (ids, matrix)
            while len(self.entries) > 1 and sum(
                    len(i) for i, _ in self.entries.values()) > self.rows:
                self.entries.popitem(last=False)


VECTOR_CACHE_ROWS = 400_000
_vectors = _VectorCache(VECTOR_CACHE_ROWS)


def _key(s: Session, collection_ids: Sequence[int]) -> tuple[Any, ...]:
    """What the vectors of ``collection_ids`` depend on: their documents and the embedder."""
    ids: BindParameter[list[int]] = bindparam("ids", expanding=True)
    docs = s.execute(text("SELECT id, created_at FROM search_documents "
                          "WHERE collection_id IN :ids ORDER BY id").bindparams(ids),
                     {"ids": list(collection_ids)}).all()
    return (EMBEDDER, embeddings.DIMENSIONS, tuple((int(i), str(t)) for i, t in docs))


def reembed_stale(s: Session, collection_ids: Sequence[int], batch: int = 256) -> int:
    """Re-embed the chunks of ``collection_ids`` whose vectors came from another embedder (or
    dimension); returns how many. Collections whose vectors are cached were checked when
    they were cached."""
    if _vectors.get(_key(s, collection_ids)) is not None:
        return 0
    done = 0
    while True:
        stale = s.scalars(select(Chunk).where(
            Chunk.collection_id.in_(collection_ids),
            (Chunk.embedder != EMBEDDER) | (Chunk.dim != embeddings.DIMENSIONS)).limit(batch)).all()
        if not stale:
            return done
        vectors = embed([passage_text(c.heading, c.text) for c in stale])
        for c, v in zip(stale, vectors, strict=True):
            c.vector, c.embedder, c.dim = v.tobytes(), EMBEDDER, embeddings.DIMENSIONS
        s.flush()
        done += len(stale)


def vector_matrix(s: Session, collection_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(chunk ids (n,) int64, unit vectors (n, DIMENSIONS) float32)`` of the current
    embedder's chunks in ``collection_ids``, from the cache when it is still valid."""
    key = _key(s, collection_ids)
    found = _vectors.get(key)
    if found is not None:
        return found
    rows = s.execute(select(Chunk.id, Chunk.vector).where(
        Chunk.collection_id.in_(collection_ids), Chunk.embedder == EMBEDDER,
        Chunk.dim == embeddings.DIMENSIONS)).all()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(
        len(rows), embeddings.DIMENSIONS)
    _vectors.put(key, ids, matrix)
    return ids, matrix


def vector_ranks(s: Session, collection_ids: Sequence[int], query: str,
                 limit: int) -> list[int]:
    """Chunk ids in ``collection_ids`` by cosine similarity to ``query``, best first (chunks
    with zero similarity are left out)."""
    if not collection_ids or not query.strip():
        return []
    ids, matrix = vector_matrix(s, collection_ids)
    if not len(ids):
        return []
    return [int(ids[i]) for i in cosine_ranks(matrix, embed([query])[0], limit)]


def cosine_ranks(matrix: np.ndarray, query_vector: np.ndarray, limit: int) -> list[int]:
    """Row numbers of the unit vectors ``matrix`` ``(n, d)`` by cosine similarity to the unit
    ``query_vector`` ``(d,)``, best first, at most ``limit``, leaving out those with
    similarity 0 or less (``argpartition`` then a sort of the top ``limit``: O(n))."""
    if not len(matrix):
        return []
    scores = matrix @ query_vector
    if limit < len(scores):
        top = np.argpartition(-scores, limit - 1)[:limit]
        order = top[np.argsort(-scores[top], kind="stable")]
    else:
        order = np.argsort(-scores, kind="stable")
    return [int(i) for i in order if scores[i] > 0]


def text_ranks(texts: Sequence[str], query: str, limit: int, k1: float = 1.2,
               b: float = 0.75) -> list[int]:
    """Positions in ``texts`` matching any word of ``query``, best first by Okapi BM25
    (Robertson and Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009;
    the IDF of :func:`idf`): the keyword
    ranking of passages that are not in the database (knowledge-pack articles)."""
    terms = set(words(query))
    if not terms or not texts:
        return []
    docs = [[w.lower() for w in _WORD.findall(t)] for t in texts]
    lengths = np.array([len(d) for d in docs], dtype=np.float64)
    avg = float(lengths.mean()) or 1.0
    counts = {t: np.array([d.count(t) for d in docs], dtype=np.float64) for t in terms}
    scores = np.zeros(len(docs))
    for tf in counts.values():
        n = int((tf > 0).sum())
        if n:
            scores += idf(len(docs), n) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths / avg))
    order = np.argsort(-scores, kind="stable")[:limit]
    return [int(i) for i in order if scores[i] > 0]


def fuse(*rankings: Sequence[int], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of ranked id lists: ``[(id, score)]``, best first (ties keep the
    earlier list's order)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])
