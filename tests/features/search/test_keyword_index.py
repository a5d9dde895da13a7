"""The keyword index over heading paths and text (migration 0010) on SQLite and PostgreSQL:
upgrading a database that already holds passages makes them findable by their headings' words,
the index follows inserts, updates and deletes, the heading outranks the text, downgrading
goes back to text only, rare words weigh more than common ones; and the word cap (stop words
out, rarest words first under a budget) on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, delete, insert, text, update
from sqlalchemy.orm import Session, sessionmaker

from cove.config import Settings
from cove.features.search import index
from cove.features.search.store import Chunk
from cove.store.db import MIGRATIONS, Database, make_engine, open_database
from tests import pg

BEFORE = "0009_ideas_arena"


def alembic(engine: Engine, action: str, revision: str) -> None:
    """``alembic upgrade|downgrade revision`` on ``engine`` (as cove.store.db.migrate does)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """An engine on an empty database of ``settings`` (SQLite or a new PostgreSQL one)."""
    e = make_engine(settings.db_url)
    yield e
    e.dispose()


def seed(s: Session, chunks: list[tuple[str, str]]) -> tuple[int, list[int]]:
    """A user, collection and document holding ``chunks`` (heading, text), written with plain
    SQL (valid at revision 0009 as at head): ``(collection id, chunk ids)``."""
    s.execute(text("INSERT INTO users (email, password_hash, role, disabled, created_at) "
                   "VALUES ('a@example.org', 'x', 'user', :no, CURRENT_TIMESTAMP)"),
              {"no": False})
    uid = s.scalar(text("SELECT id FROM users"))
    s.execute(text("INSERT INTO search_collections (user_id, name, created_at) "
                   "VALUES (:u, 'c', CURRENT_TIMESTAMP)"), {"u": uid})
    cid = s.scalar(text("SELECT id FROM search_collections"))
    s.execute(text("INSERT INTO search_documents (user_id, collection_id, filename, kind, bytes,"
                   " sha256, chars, notes, created_at) VALUES (:u, :c, 'd.md', 'markdown', 1, "
                   "'0', 1, '[]', CURRENT_TIMESTAMP)"), {"u": uid, "c": cid})
    did = s.scalar(text("SELECT id FROM search_documents"))
    vector = np.zeros(4, np.float32).tobytes()
    for i, (heading, body) in enumerate(chunks):
        s.execute(text(
            'INSERT INTO search_chunks (user_id, collection_id, document_id, ordinal, text, '
            'heading, start, "end", embedder, dim, vector) VALUES (:u, :c, :d, :i, :t, :h, 0, '
            '1, \'none\', 4, :v)'), {"u": uid, "c": cid, "d": did, "i": i, "t": body,
                                     "h": heading, "v": vector})
    ids = list(s.scalars(text("SELECT id FROM search_chunks ORDER BY id")))
    return int(cid), [int(i) for i in ids]


def text_only_matches(s: Session, word: str) -> list[int]:
    """Chunk ids the revision-0009 index matches ``word`` in."""
    if s.get_bind().dialect.name == "sqlite":
        sql = ("SELECT rowid FROM search_chunks_fts WHERE search_chunks_fts MATCH :w "
               "ORDER BY rowid")
    else:
        sql = "SELECT id FROM search_chunks WHERE tsv @@ plainto_tsquery('english', :w) ORDER BY id"
    return [int(i) for i in s.scalars(text(sql), {"w": word})]


def test_upgrade_indexes_the_headings_of_stored_passages(engine: Engine) -> None:
    alembic(engine, "upgrade", BEFORE)
    sessions = sessionmaker(engine)
    with sessions.begin() as s:
        cid, (pests, soil) = seed(s, [("Garden > Pests", "Aphids are eaten by ladybirds."),
                                      ("Garden > Soil", "Compost feeds the worms.")])
        assert text_only_matches(s, "pests") == []  # before: the heading is not indexed
        assert text_only_matches(s, "ladybirds") == [pests]

    alembic(engine, "upgrade", "head")
    with sessions.begin() as s:
        assert index.keyword_ranks(s, [cid], "pests", 10) == [pests]
        assert sorted(index.keyword_ranks(s, [cid], "garden", 10)) == [pests, soil]
        assert index.keyword_ranks(s, [cid], "ladybirds", 10) == [pests]
        assert index.keyword_ranks(s, [cid], "worms", 10) == [soil]

        # the index follows new, changed and deleted passages (triggers; a generated column)
        s.execute(insert(Chunk), [{"user_id": 1, "collection_id": cid, "document_id": 1,
                                   "ordinal": 2, "text": "Water in the morning.",
                                   "heading": "Garden > Irrigation", "start": 0, "end": 1,
                                   "embedder": "none", "dim": 4, "vector": b"\0" * 16}])
        new = max(index.keyword_ranks(s, [cid], "irrigation", 10))
        assert new > soil
        s.execute(update(Chunk).where(Chunk.id == soil).values(heading="Garden > Earth"))
        assert index.keyword_ranks(s, [cid], "soil", 10) == []
        assert index.keyword_ranks(s, [cid], "earth", 10) == [soil]
        s.execute(delete(Chunk).where(Chunk.id == new))
        assert index.keyword_ranks(s, [cid], "irrigation", 10) == []
        assert index.keyword_ranks(s, [cid], "morning", 10) == []

    alembic(engine, "downgrade", BEFORE)
    with sessions.begin() as s:
        assert text_only_matches(s, "pests") == []
        assert text_only_matches(s, "ladybirds") == [pests]
        assert text_only_matches(s, "worms") == [soil]
    alembic(engine, "upgrade", "head")
    with sessions.begin() as s:
        assert index.keyword_ranks(s, [cid], "earth", 10) == [soil]


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    d = open_database(settings)
    yield d
    d.close()


def test_the_heading_outranks_the_text(db: Database) -> None:
    with db.session() as s:
        cid, (in_text, in_heading) = seed(s, [
            ("Tools > Hammers", "Sharpen a chisel on a whetstone, then hone it."),
            ("Tools > Chisels", "Sharpen the blade on a whetstone, then hone it.")])
        assert index.keyword_ranks(s, [cid], "chisel", 10) == [in_heading, in_text]


def test_a_rare_word_outranks_a_common_one(db: Database) -> None:
    """Ranks weigh words by rarity (IDF: SQLite's bm25(), PostgreSQL's sum of ts_rank times
    IDF), so a passage naming the rare word comes before those repeating the common one."""
    common = [("Notes", f"The garden garden garden is green, bed {i}.") for i in range(10)]
    with db.session() as s:
        cid, ids = seed(s, [*common, ("Notes", "Ladybirds eat the aphids.")])
        ranked = index.keyword_ranks(s, [cid], "garden ladybirds", 20)
        assert ranked[0] == ids[-1] and sorted(ranked) == ids


def test_word_cap_on_both_databases(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    common = [(f"Garden > Bed {i}", f"Plant number {i} grows here.") for i in range(30)]
    with db.session() as s:
        cid, ids = seed(s, [*common, ("Garden > Pests", "Aphids are eaten by ladybirds.")])
        assert index.document_frequency(s, "garden") == 31  # headings count
        assert index.document_frequency(s, "ladybirds") == 1
        assert index.document_frequency(s, "zebra") == 0
        assert index.keyword_terms(s, "what is the garden?") == ["garden"]
        assert index.keyword_terms(s, "the") == ["the"]  # nothing but stop words: kept
        assert index.keyword_terms(s, "garden ladybirds", budget=10) == ["ladybirds"]
        assert index.keyword_terms(s, "garden ladybirds zebra", budget=10) == [
            "ladybirds", "zebra"]
        assert index.keyword_terms(s, "garden ladybirds", budget=100) == ["garden", "ladybirds"]
        assert len(index.keyword_ranks(s, [cid], "garden ladybirds", 50)) == 31
        monkeypatch.setattr(index, "MATCH_BUDGET", 10)
        assert index.keyword_ranks(s, [cid], "garden ladybirds", 50) == [ids[-1]]
        assert index.keyword_ranks(s, [cid], 'or " OR', 50) == []  # never a syntax error
        # counting stops past the budget: a common word costs no more than the search
        assert index.document_frequency(s, "garden", cap=5) == 5
        assert index.document_frequency(s, "ladybirds", cap=5) == 1
        # "its" is not a stop word of Cove's list, but is one of PostgreSQL's English
        # configuration: there it cannot be searched, and is dropped
        if s.get_bind().dialect.name == "postgresql":
            assert index.document_frequency(s, "its") is None
            assert index.keyword_terms(s, "ladybirds its") == ["ladybirds"]
        else:
            assert index.keyword_terms(s, "ladybirds its") == ["ladybirds", "its"]
        assert index.keyword_ranks(s, [cid], "ladybirds its", 50) == [ids[-1]]


def test_select_terms() -> None:
    counts = {"python": 9000, "json": 40, "decode": 300, "module": 5000, "the": 18000,
              "of": 17000}
    df = counts.__getitem__
    assert index.select_terms("How do I decode JSON in the python module?", df, 1000) == [
        "decode", "json"]
    assert index.select_terms("decode JSON python", df, 20) == ["json"]  # always one
    assert index.select_terms("decode JSON python", df, 10**6) == ["decode", "json", "python"]
    assert index.select_terms("the of", df) == ["of"]  # only stop words: kept, still capped
    assert index.select_terms("the of", df, 10**6) == ["the", "of"]
    assert index.select_terms("", df) == []
    unsearchable = {**counts, "its": None}.__getitem__  # PostgreSQL's own stop word
    assert index.select_terms("json its", unsearchable) == ["json"]
    assert index.select_terms("its the json", unsearchable) == ["json"]


def test_idf_stays_positive_with_a_stale_passage_count() -> None:
    """PostgreSQL's passage count is the planner's estimate, which lags a large ingest."""
    assert index.idf(10, 5000) > 0 and index.idf(10, 5000) == index.idf(10, 10)


@pytest.fixture
def pg_db(pg_url: str, tmp_path: Path) -> Iterator[Database]:
    """A new, migrated PostgreSQL database."""
    with pg.fresh_database(pg_url) as url:
        d = open_database(Settings(home=tmp_path / "home", database_url=url))
        yield d
        d.close()


def test_postgresql_estimates_word_counts_from_the_planner(
        pg_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large PostgreSQL index takes word counts from ANALYZE's statistics of the tsvector
    column (pg_terms) instead of counting: a common word's estimate is near its count, a word
    the statistics do not list is rare, PostgreSQL's own stop words cannot be searched, and
    the search no longer counts anything."""
    from cove.features.search import pg_terms

    db = pg_db
    rows = [(f"Garden > Bed {i}", f"Plant number {i} grows here{' with ladybirds' * (i < 3)}.")
            for i in range(400)]
    with db.session() as s:
        cid, ids = seed(s, rows)
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE search_chunks"))
    monkeypatch.setattr(pg_terms, "MIN_PASSAGES", 100)
    pg_terms._cache.clear()
    with db.session() as s:
        planner = pg_terms.stats(s)
        assert planner is not None and planner.passages == 400
        guessed = pg_terms.estimates(s, planner, ["garden", "plant", "its", "zebra"])
        assert guessed["its"] is None
        assert 360 <= (guessed["garden"] or 0) <= 440
        assert (guessed["zebra"] or 0) < (guessed["plant"] or 0)
        monkeypatch.setattr(index, "document_frequency", None)  # never called now
        assert index.keyword_terms(s, "garden ladybirds its", budget=100) == ["ladybirds"]
        assert index.keyword_ranks(s, [cid], "ladybirds its", 10) == ids[:3]
    monkeypatch.setattr(pg_terms, "MIN_PASSAGES", 1000)  # a small index: counted again
    pg_terms._cache.clear()
    with db.session() as s:
        assert pg_terms.stats(s) is None
