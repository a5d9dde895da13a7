"""Database engine, sessions and migrations.

:func:`open_database` builds the engine for ``Settings.db_url`` (SQLite in WAL mode with foreign
keys on, or any SQLAlchemy URL such as PostgreSQL via ``COVE_DATABASE_URL``), applies every Alembic
migration in ``cove/store/migrations`` and marks answers cut off by a previous crash.

Several ``cove serve`` processes may share one PostgreSQL database (behind a load balancer):

- migrations run under a transaction-level advisory lock (``pg_advisory_xact_lock``), so when
  processes start together one applies them and the others wait, then find nothing to do;
- every process holds a shared session-level advisory lock for its life (on a connection of
  its own). At start a process marks answers left ``streaming`` as ``interrupted`` only when it
  can take that lock exclusively, i.e. no other Cove process is running: a starting process
  never cuts off the answers another one is still streaming;
- an answer (or stored response) being written records its *writer*, the backend pid of the
  writing process's live connection. A process killed while others run takes that connection
  with it, so :meth:`Database.sweep` (at every start, then every :data:`SWEEP_SECONDS` in the
  server) marks the rows whose writer is no longer in ``pg_stat_activity`` as cut off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    column,
    create_engine,
    event,
    select,
    table,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from cove.config import Settings
from cove.store import responses
from cove.store.tables import Message, StoredResponse

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x436F7665_01  # advisory lock keys ("Cove" + a number)
LIVE_LOCK = 0x436F7665_02
SWEEP_SECONDS = 30  # how often a server looks for answers of processes that died


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url``; SQLite files get their directory created and WAL on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Apply every pending Alembic migration (``upgrade head``)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # one process migrates; the others wait
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@dataclass
class Database:
    """An open, migrated database: ``engine`` and a ``sessionmaker``."""

    engine: Engine
    sessions: sessionmaker[Session]
    live: Connection | None = None  # PostgreSQL: holds this process's shared LIVE_LOCK
    writer: int | None = None  # PostgreSQL: the backend pid of ``live`` (rows' ``writer``)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.url.get_backend_name() == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def reclaim_space(self) -> None:
        """Give freed pages back to the file system (SQLite ``VACUUM``; no-op elsewhere)."""
        if self.is_sqlite:
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(text("VACUUM"))  # rewrites the file (into the WAL first) ...
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))  # ... and back

    def sweep(self) -> int:
        """Mark answers left ``streaming`` and responses left ``in_progress`` by a process
        that died while others ran (PostgreSQL: their ``writer`` pid holds no connection any
        more) as ``interrupted`` / ``failed``, partial text kept; returns how many. Rows
        without a writer (from before migration 0011) are left to a start with no other
        process. A no-op on SQLite."""
        if self.is_sqlite:
            return 0
        alive = select(column("pid")).select_from(table("pg_stat_activity")).scalar_subquery()
        dead = Message.writer.is_not(None) & Message.writer.not_in(alive)
        dead_response = StoredResponse.writer.is_not(None) & StoredResponse.writer.not_in(alive)
        with self.session() as s:
            done = cast(CursorResult[Any], s.execute(
                update(Message).where(Message.status == "streaming", dead)
                .values(status="interrupted")))
            return int(done.rowcount or 0) + responses.mark_interrupted(s, dead_response)

    def release(self) -> None:
        """Stop holding the database as a live process (PostgreSQL; the connection is closed
        for real, not returned to the pool, so its session lock goes with it)."""
        if self.live is not None:
            self.live.invalidate()
            self.live.close()
            self.live = None

    def close(self) -> None:
        self.release()
        self.engine.dispose()


def open_database(settings: Settings) -> Database:
    """Open and migrate the database of ``settings``; answers left ``streaming`` by a process
    that died are marked ``interrupted`` (their partial text is kept), stored API responses
    left ``in_progress`` are marked ``failed``."""
    engine = make_engine(settings.db_url)
    migrate(engine)
    db = Database(engine, sessionmaker(engine, expire_on_commit=False))
    shared = engine.dialect.name == "postgresql"
    alone = not shared or _alone(engine)
    if alone:
        with db.session() as s:
            s.execute(
                update(Message).where(Message.status == "streaming").values(status="interrupted")
            )
            responses.mark_interrupted(s)
    if shared:
        db.live = engine.connect()
        db.live.execute(text("SELECT pg_advisory_lock_shared(:k)"), {"k": LIVE_LOCK})
        db.writer = int(db.live.execute(text("SELECT pg_backend_pid()")).scalar_one())
        db.live.commit()  # the session-level lock outlives the transaction
        db.sessions.configure(info={"writer": db.writer})
        if not alone:
            db.sweep()
    return db


def _alone(engine: Engine) -> bool:
    """Whether no other Cove process holds the database (PostgreSQL: LIVE_LOCK is free)."""
    with engine.connect() as conn:
        free = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                 {"k": LIVE_LOCK}).scalar())
        if free:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LIVE_LOCK})
        conn.commit()
    return free


def redacted_url(url: str) -> str:
    """``url`` with any password hidden (for ``cove privacy`` and logs)."""
    return make_url(url).render_as_string(hide_password=True)
