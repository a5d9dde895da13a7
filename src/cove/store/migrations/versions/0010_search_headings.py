"""search: the keyword index covers each passage's heading path as well as its text

Revision ID: 0010_search_headings
Revises: 0009_ideas_arena
Create Date: 2026-12-02 04:30:00

A passage's heading path (``Page title > Section > Subsection``) names what the passage is
about, often in words its text never repeats (a module's name, say); vectors already embed it
(see ``index.passage_text``), keyword search now indexes it too.

SQLite: the FTS5 external-content table ``search_chunks_fts`` is made again with two columns,
``heading`` and ``text`` (same tokenizer), its triggers follow both columns, and its contents
are rebuilt from ``search_chunks`` (FTS5's ``'rebuild'`` command), so passages stored before
are found by their heading's words at once. Queries weight the columns with ``bm25()``.

PostgreSQL: the generated ``tsv`` column becomes
``setweight(to_tsvector('english', heading), 'A') || setweight(to_tsvector('english', text),
'B')`` (PostgreSQL 15 cannot change a generated column's expression, so the column and its GIN
index are dropped and added again; adding a stored generated column computes it for every
existing row). ``ts_rank_cd`` weights the two labels.

Downgrade: back to the text-only index of 0003 (rebuilt likewise).
"""

from __future__ import annotations

from alembic import op

revision = "0010_search_headings"
down_revision = "0009_ideas_arena"
branch_labels = None
depends_on = None

TOKENIZE = "tokenize='porter unicode61 remove_diacritics 2'"
TRIGGERS = ("search_chunks_au", "search_chunks_ad", "search_chunks_ai")


def _sqlite_index(columns: list[str]) -> list[str]:
    """The statements making ``search_chunks_fts`` over ``columns`` of ``search_chunks``,
    its three triggers, and filling it from the chunks already stored."""
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    return [
        f"CREATE VIRTUAL TABLE search_chunks_fts USING fts5({cols}, content='search_chunks', "
        f"content_rowid='id', {TOKENIZE})",
        "CREATE TRIGGER search_chunks_ai AFTER INSERT ON search_chunks BEGIN "
        f"INSERT INTO search_chunks_fts(rowid, {cols}) VALUES (new.id, {new}); END",
        "CREATE TRIGGER search_chunks_ad AFTER DELETE ON search_chunks BEGIN "
        f"INSERT INTO search_chunks_fts(search_chunks_fts, rowid, {cols}) "
        f"VALUES ('delete', old.id, {old}); END",
        f"CREATE TRIGGER search_chunks_au AFTER UPDATE OF {cols} ON search_chunks BEGIN "
        f"INSERT INTO search_chunks_fts(search_chunks_fts, rowid, {cols}) "
        f"VALUES ('delete', old.id, {old}); "
        f"INSERT INTO search_chunks_fts(rowid, {cols}) VALUES (new.id, {new}); END",
        "INSERT INTO search_chunks_fts(search_chunks_fts) VALUES ('rebuild')",
    ]


def _drop_sqlite_index() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS search_chunks_fts")


def _postgres_tsv(expression: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_search_chunks_tsv")
    op.execute("ALTER TABLE search_chunks DROP COLUMN IF EXISTS tsv")
    op.execute(f"ALTER TABLE search_chunks ADD COLUMN tsv tsvector "
               f"GENERATED ALWAYS AS ({expression}) STORED")
    op.execute("CREATE INDEX ix_search_chunks_tsv ON search_chunks USING GIN (tsv)")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _drop_sqlite_index()
        for statement in _sqlite_index(["heading", "text"]):
            op.execute(statement)
    else:
        _postgres_tsv("setweight(to_tsvector('english', heading), 'A') || "
                      "setweight(to_tsvector('english', text), 'B')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _drop_sqlite_index()
        for statement in _sqlite_index(["text"]):
            op.execute(statement)
    else:
        _postgres_tsv("to_tsvector('english', text)")
