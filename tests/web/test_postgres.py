"""The conversation store on a real PostgreSQL server (COVE_DATABASE_URL): migrations at start,
accounts, a streamed turn saved, export, isolation, hard delete."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

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
