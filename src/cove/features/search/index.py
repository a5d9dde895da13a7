"""Ranking chunks: keyword ranks from the database's full-text index, vector ranks by cosine
similarity (numpy), fused by reciprocal rank fusion.

Keyword search never hands user text to a query language: the query is cut into word tokens,
and on SQLite each becomes a quoted FTS5 string (``"word"``, quotes doubled) joined with ``OR``
and ranked by ``bm25()``; on PostgreSQL the tokens go to ``websearch_to_tsquery('english', ...)``
joined with ``or`` (which never raises on any input) and are ranked by ``ts_rank_cd``.

Reciprocal rank fusion: G. V. Cormack, C. L. A. Clarke and S. Büttcher, "Reciprocal rank fusion
outperforms Condorcet and individual rank learning methods", SIGIR 2009 — each list adds
``1 / (60 + rank)`` (rank from 1) to a chunk's score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from cove import embeddings
from cove.features.search.store import Chunk

EMBEDDER = f"wordllama/l2_supercat-{embeddings.DIMENSIONS}"
RRF_K = 60
_WORD = re.compile(r"\w+", re.UNICODE)


def embed(texts: list[str]) -> np.ndarray:
    """Unit vectors ``(len(texts), DIMENSIONS)`` float32 of the core embedder."""
    return embeddings.embed(texts)


def words(query: str, limit: int = 64) -> list[str]:
    """The word tokens of ``query`` (at most ``limit``), lower-cased."""
    return [w.lower() for w in _WORD.findall(query)][:limit]


def fts5_query(query: str) -> str:
    """An FTS5 MATCH expression matching any word of ``query``, each a quoted string; ``""``
    when it has no words."""
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words(query))


def keyword_ranks(s: Session, collection_ids: Sequence[int], query: str,
                  limit: int) -> list[int]:
    """Chunk ids in ``collection_ids`` matching ``query`` by keyword, best first."""
    if not collection_ids or not words(query):
        return []
    ids: BindParameter[list[int]] = bindparam("ids", expanding=True)
    if s.get_bind().dialect.name == "sqlite":
        stmt = text(
            "SELECT c.id FROM search_chunks_fts f JOIN search_chunks c ON c.id = f.rowid "
            "WHERE search_chunks_fts MATCH :q AND c.collection_id IN :ids "
            "ORDER BY bm25(search_chunks_fts) LIMIT :limit").bindparams(ids)
        q = fts5_query(query)
    else:
        stmt = text(
            "SELECT id FROM search_chunks, websearch_to_tsquery('english', :q) query "
            "WHERE tsv @@ query AND collection_id IN :ids "
            "ORDER BY ts_rank_cd(tsv, query) DESC, id LIMIT :limit").bindparams(ids)
        q = " or ".join(w for w in words(query) if w != "or")
    return [int(r[0]) for r in s.execute(stmt, {"q": q, "ids": list(collection_ids),
                                                "limit": limit})]


def reembed_stale(s: Session, collection_ids: Sequence[int], batch: int = 256) -> int:
    """Re-embed the chunks of ``collection_ids`` whose vectors came from another embedder (or
    dimension); returns how many."""
    done = 0
    while True:
        stale = s.scalars(select(Chunk).where(
            Chunk.collection_id.in_(collection_ids),
            (Chunk.embedder != EMBEDDER) | (Chunk.dim != embeddings.DIMENSIONS)).limit(batch)).all()
        if not stale:
            return done
        vectors = embed([c.text for c in stale])
        for c, v in zip(stale, vectors, strict=True):
            c.vector, c.embedder, c.dim = v.tobytes(), EMBEDDER, embeddings.DIMENSIONS
        s.flush()
        done += len(stale)


def vector_ranks(s: Session, collection_ids: Sequence[int], query: str,
                 limit: int) -> list[int]:
    """Chunk ids in ``collection_ids`` by cosine similarity to ``query``, best first (chunks
    with zero similarity are left out)."""
    if not collection_ids or not query.strip():
        return []
    rows = s.execute(select(Chunk.id, Chunk.vector).where(
        Chunk.collection_id.in_(collection_ids), Chunk.embedder == EMBEDDER)).all()
    if not rows:
        return []
    matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(
        len(rows), embeddings.DIMENSIONS)
    return [int(rows[i][0]) for i in cosine_ranks(matrix, embed([query])[0], limit)]


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
    the IDF of Lucene, ``ln(1 + (N - n + 0.5) / (n + 0.5))``, never negative): the keyword
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
        n = float((tf > 0).sum())
        if n:
            idf = np.log(1 + (len(docs) - n + 0.5) / (n + 0.5))
            scores += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths / avg))
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
