"""The conversation store on a real PostgreSQL server (COVE_DATABASE_URL): migrations at start,
accounts, a streamed turn saved, export, isolation, hard delete."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from cove.chats import repo
from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.store.tables import Conversation, Message, User
from tests import pg
from tests.conftest import FakeWorld, local_client
from tests.web.helpers import Browser, events, text_of

pytestmark = pytest.mark.skipif(not pg.available(), reason="PostgreSQL server not installed")


def test_store_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    world = FakeWorld(Settings(home=tmp_path / "home", database_url=pg_url), ScriptedEngine())
    assert world.app.state.db.engine.url.get_backend_name() == "postgresql"
    with world.client:
        alice = Browser(world.client)
        bob = Browser(local_client(world.app))
        assert alice.signup("alice@example.org").json()["user"]["role"] == "admin"
        assert bob.signup("bob@example.org").json()["user"]["role"] == "user"
        cid = alice.post("/web/conversations", json={}).json()["id"]
        world.engine.enqueue(["Hello", " from", " Postgres"])
        r = alice.post(f"/web/conversations/{cid}/messages", json={"content": "hi"})
        assert text_of(events(r.text)) == "Hello from Postgres"
        conv = alice.get(f"/web/conversations/{cid}").json()
        assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
        assert conv["messages"][1]["content"] == "Hello from Postgres"
        assert bob.get(f"/web/conversations/{cid}").status_code == 404
        export = alice.get("/web/export").json()
        assert "Hello from Postgres" in str(export)
        assert alice.delete(f"/web/conversations/{cid}").status_code == 200
        with world.app.state.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Conversation)) == 0
            assert s.scalar(select(func.count()).select_from(Message)) == 0
            assert s.scalar(select(func.count()).select_from(User)) == 2


def test_answers_of_a_process_that_died_are_swept_by_the_others(pg_url: str,
                                                                 tmp_path: Path) -> None:
    """Two processes on one database: the one that dies leaves a streaming answer and an
    in-progress response; the survivor's sweep marks both (partial text kept), and leaves
    its own streaming answer alone."""
    from cove.store import responses
    from cove.store.db import open_database
    from cove.store.tables import StoredResponse

    with pg.fresh_database(pg_url) as url:
        settings = Settings(home=tmp_path / "home", database_url=url)
        dying, survivor = open_database(settings), open_database(settings)
        try:
            assert dying.writer and survivor.writer and dying.writer != survivor.writer
            with survivor.session() as s:
                u = User(email="x@y.z", password_hash="h")
                s.add(u)
                s.flush()
                s.add(Conversation(id="c1", user_id=u.id))
            for db, content in ((dying, "half an ans"), (survivor, "still goi")):
                with db.session() as s:
                    conv = s.get(Conversation, "c1")
                    assert conv is not None
                    repo.add_message(s, conv, "assistant", content, status="streaming")
            with dying.session() as s:
                responses.create(s, {"id": "resp_1", "model": "m", "status": "in_progress"},
                                 [], None)
            assert survivor.sweep() == 0  # both writers are alive
            dying.live.invalidate()  # as when the process is killed: its connection is gone
            dying.live = None
            dying.engine.dispose()
            assert survivor.sweep() == 2
            with survivor.session() as s:
                got = {m.content: m.status for m in s.scalars(select(Message))}
                assert got == {"half an ans": "interrupted", "still goi": "streaming"}
                row = s.get(StoredResponse, "resp_1")
                assert row is not None and row.status == "failed"
            assert survivor.sweep() == 0
            # a process starting beside the survivor sweeps too, and never its answers
            third = open_database(settings)
            with third.session() as s:
                assert {m.status for m in s.scalars(select(Message))} == {
                    "interrupted", "streaming"}
            third.close()
        finally:
            survivor.close()
            dying.close()
