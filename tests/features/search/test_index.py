"""Ranking pieces: FTS5 query quoting, reciprocal rank fusion, re-embedding stale vectors, and
keyword-only and meaning-only matches both reaching the fused results."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from cove.config import Settings
from cove.features.search import index, service
from cove.features.search.store import Chunk
from cove.store.db import Database, open_database
from cove.store.tables import User


@pytest.mark.parametrize("query", ['"', 'a" OR b', "NEAR(x y)", "col:text", "*", "-x ^y",
                                   "AND OR NOT", "ünïcode wörds", "(unbalanced", "''"])
def test_any_text_is_a_valid_fts5_query(query: str) -> None:
    con = sqlite3.connect(":memory:")
    con.execute("CREATE VIRTUAL TABLE t USING fts5(text)")
    con.execute("INSERT INTO t VALUES ('a b x y text wörds and or not')")
    q = index.fts5_query(query)
    if q:
        con.execute("SELECT * FROM t WHERE t MATCH ?", (q,)).fetchall()  # never a syntax error
    assert all(part.startswith('"') and part.endswith('"') for part in q.split(" OR ") if q)


def test_reciprocal_rank_fusion() -> None:
    fused = index.fuse([1, 2, 3], [3, 4])
    assert [cid for cid, _ in fused] == [3, 1, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 63 + 1 / 61)
    assert index.fuse([], []) == []


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(Settings(home=tmp_path / "home"))


def add(db: Database, texts: dict[str, str]) -> tuple[int, int]:
    with db.session() as s:
        u = User(email="a@example.org", password_hash="x")
        s.add(u)
        s.flush()
        cid = service.create_collection(s, u.id, "c").id
        for name, body in texts.items():
            service.add_document(s, u.id, cid, service.prepare(name, body.encode(), 10**6))
        return u.id, cid


def test_stale_vectors_are_re_embedded(db: Database) -> None:
    uid, cid = add(db, {"a.txt": "Volcanoes erupt molten rock.", "b.txt": "Bread needs yeast."})
    with db.session() as s:
        s.execute(update(Chunk).values(embedder="old-model", dim=8,
                                       vector=np.ones(8, np.float32).tobytes()))
    with db.session() as s:
        hits = service.search(s, uid, [cid], "lava from a mountain")
        rows = s.execute(select(Chunk.embedder, Chunk.dim, Chunk.vector)).all()
    assert {(e, d) for e, d, _ in rows} == {(index.EMBEDDER, 256)}
    assert all(len(v) == 256 * 4 for _, _, v in rows)
    assert hits[0]["document"] == "a.txt"


def test_hybrid_finds_by_keyword_and_by_meaning(db: Database) -> None:
    uid, cid = add(db, {"code.txt": "Error XK-4471 means the disk is full.",
                        "pets.txt": "Dogs and cats are common household animals.",
                        "food.txt": "Soup is made by boiling vegetables."})
    with db.session() as s:
        assert index.keyword_ranks(s, [cid], "xk 4471", 10) != []
        assert service.search(s, uid, [cid], "XK-4471")[0]["document"] == "code.txt"
        # no shared word: found by meaning alone
        assert index.keyword_ranks(s, [cid], "puppies kittens", 10) == []
        assert service.search(s, uid, [cid], "puppies kittens")[0]["document"] == "pets.txt"
