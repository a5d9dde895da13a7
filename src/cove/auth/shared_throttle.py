"""The sign-in and API-key limits of :mod:`cove.auth.throttle`, kept in the database so that
every ``cove serve`` process of one PostgreSQL database counts the same failures (several web
processes behind a load balancer must not multiply an attacker's attempts).

Rows of ``auth_throttle`` (scope, key, failures, last failure in Unix seconds) change in single
statements (an ``INSERT ... ON CONFLICT DO UPDATE`` counts a failure), so two processes
counting at once both count. The device-cookie key is one random row of ``server_secrets``
created by whichever process comes first.
"""

from __future__ import annotations

import secrets
import time

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert

from cove.auth.throttle import MAX_KEYS, Backoff, Clock
from cove.store.db import Database
from cove.store.tables import AuthThrottle, ServerSecret

PRUNE_EVERY = 200  # failures counted between deletions of forgotten rows


class SharedBackoff(Backoff):
    """:class:`~cove.auth.throttle.Backoff` over the ``auth_throttle`` rows of ``scope``.
    ``clock`` must be wall-clock seconds (shared between processes)."""

    def __init__(self, db: Database, scope: str, free: int, base: float, cap: float, *,
                 clock: Clock = time.time, forget: float | None = None) -> None:
        super().__init__(free, base, cap, clock=clock, forget=forget, max_keys=MAX_KEYS)
        self.db = db
        self.scope = scope
        self._since_prune = 0

    def _row(self, key: str) -> tuple[int, float] | None:
        with self.db.session() as s:
            row = s.execute(select(AuthThrottle.failures, AuthThrottle.last_at).where(
                AuthThrottle.scope == self.scope, AuthThrottle.key == key)).first()
        if row is None or self.clock() - row.last_at > self.forget:
            return None
        return int(row.failures), float(row.last_at)

    def wait(self, key: str) -> float:
        row = self._row(key)
        if row is None:
            return 0.0
        return max(0.0, row[1] + self.delay(row[0]) - self.clock())

    def failures(self, key: str) -> int:
        row = self._row(key)
        return row[0] if row is not None else 0

    def fail(self, key: str) -> None:
        now = self.clock()
        stmt = insert(AuthThrottle).values(scope=self.scope, key=key, failures=1, last_at=now)
        stale = AuthThrottle.last_at < now - self.forget
        stmt = stmt.on_conflict_do_update(
            index_elements=[AuthThrottle.scope, AuthThrottle.key],
            set_={"failures": _case(stale, 1, AuthThrottle.failures + 1), "last_at": now})
        with self.db.session() as s:
            s.execute(stmt)
            self._since_prune += 1
            if self._since_prune >= PRUNE_EVERY:
                self._since_prune = 0
                s.execute(delete(AuthThrottle).where(AuthThrottle.scope == self.scope, stale))

    def forgive(self, key: str) -> None:
        where = (AuthThrottle.scope == self.scope, AuthThrottle.key == key)
        with self.db.session() as s:
            s.execute(update(AuthThrottle).where(*where).values(
                failures=AuthThrottle.failures - 1))
            s.execute(delete(AuthThrottle).where(*where, AuthThrottle.failures <= 0))

    def reset(self, key: str) -> None:
        with self.db.session() as s:
            s.execute(delete(AuthThrottle).where(AuthThrottle.scope == self.scope,
                                                 AuthThrottle.key == key))


def _case(cond: object, then: object, other: object) -> object:
    from sqlalchemy import case

    return case((cond, then), else_=other)  # type: ignore[arg-type]


def shared_secret(db: Database, name: str) -> bytes:
    """The secret ``name`` of this database, created (32 random bytes) if it has none yet."""
    with db.session() as s:
        s.execute(insert(ServerSecret).values(name=name, value=secrets.token_bytes(32))
                  .on_conflict_do_nothing(index_elements=[ServerSecret.name]))
    with db.session() as s:
        return bytes(s.scalars(select(ServerSecret.value).where(
            ServerSecret.name == name)).one())
