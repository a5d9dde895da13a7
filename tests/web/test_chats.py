"""Stored conversations over the scripted engine: streaming and saving, regenerate, edit-and-
resend, stop, search, rename, export, delete (one, all, account) with space reclaimed, retention,
sign-up modes, guest chat leaving no rows."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from cove.app import apply_retention
from cove.chats.turns import TurnRequest, start_turn
from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.pipeline import ChatDelta
from cove.store.db import Database, open_database
from cove.store.tables import Conversation, Message, User, utcnow
from tests.api.test_openai_scripted import R1_TEMPLATE
from tests.conftest import FakeWorld, local_client
from tests.web.helpers import PASSWORD, Browser, events, text_of


def db(fake: FakeWorld) -> Database:
    return fake.app.state.db  # type: ignore[no-any-return]


def count(fake: FakeWorld, table: Any) -> int:
    with db(fake).session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def send(b: Browser, cid: str, **body: Any) -> list[dict[str, Any]]:
    r = b.post(f"/web/conversations/{cid}/messages", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return events(r.text)


def test_send_streams_and_saves_everything(fake: FakeWorld, alice: Browser) -> None:
    cid = alice.post("/web/conversations", json={}).json()["id"]
    fake.engine.enqueue(["Hello", " there", "!"])
    evs = send(alice, cid, content="Say hello to me please", max_tokens=50)
    assert evs[0]["type"] == "start"
    assert evs[0]["user_message"]["content"] == "Say hello to me please"
    assert text_of(evs) == "Hello there!"
    assert evs[-1] == {"type": "done", "finish_reason": "stop",
                       "usage": {"prompt_tokens": evs[-1]["usage"]["prompt_tokens"],
                                 "completion_tokens": 3}}
    conv = alice.get(f"/web/conversations/{cid}").json()
    assert conv["title"] == "Say hello to me please"
    assert conv["model"] == "scripted:latest"
    user, answer = conv["messages"]
    assert (user["role"], user["content"], user["status"]) == (
        "user", "Say hello to me please", "complete")
    assert answer["role"] == "assistant" and answer["content"] == "Hello there!"
    assert answer["status"] == "complete" and answer["finish_reason"] == "stop"
    assert answer["completion_tokens"] == 3 and answer["prompt_tokens"] > 10
    assert answer["model"] == "scripted:latest" and answer["created_at"].endswith("Z")
    # the stored history goes back into the prompt of the next turn
    fake.engine.enqueue(["again"])
    send(alice, cid, content="more")
    prompt = bytes(fake.engine.history[-1][0]).decode()
    assert "Say hello to me please" in prompt and "Hello there!" in prompt and "more" in prompt


def test_reasoning_is_saved_apart(fake: FakeWorld, alice: Browser) -> None:
    fake.engine.info = fake.engine.info.__class__(**{**fake.engine.info.__dict__,
                                                     "chat_template": R1_TEMPLATE})
    cid = alice.post("/web/conversations", json={}).json()["id"]
    fake.engine.enqueue(["Let me ", "think.", "</think>", "Four."])
    evs = send(alice, cid, content="2+2?")
    assert text_of(evs, "reasoning") == "Let me think." and text_of(evs) == "Four."
    answer = alice.get(f"/web/conversations/{cid}").json()["messages"][1]
    assert (answer["reasoning"], answer["content"]) == ("Let me think.", "Four.")


def test_regenerate_and_edit_and_resend(fake: FakeWorld, alice: Browser) -> None:
    cid = alice.post("/web/conversations", json={}).json()["id"]
    fake.engine.enqueue(["one"])
    send(alice, cid, content="first")
    fake.engine.enqueue(["two"])
    send(alice, cid, content="second")
    fake.engine.enqueue(["TWO"])
    evs = send(alice, cid, regenerate=True)
    assert evs[0]["user_message"] is None
    msgs = alice.get(f"/web/conversations/{cid}").json()["messages"]
    assert [m["content"] for m in msgs] == ["first", "one", "second", "TWO"]
    fake.engine.enqueue(["ONE"])
    send(alice, cid, content="first, edited", edit_from=msgs[0]["id"])
    msgs = alice.get(f"/web/conversations/{cid}").json()["messages"]
    assert [m["content"] for m in msgs] == ["first, edited", "ONE"]
    r = alice.post(f"/web/conversations/{cid}/messages",
                   json={"content": "x", "edit_from": msgs[1]["id"]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "edit_from"


def test_bad_input_stores_nothing(fake: FakeWorld, alice: Browser) -> None:
    cid = alice.post("/web/conversations", json={}).json()["id"]
    for body, param in [({"content": "  "}, "content"), ({"content": "x", "model": "nope"},
                                                         "model"),
                        ({"content": "x" * 3000}, "messages"), ({"content": 5}, "content")]:
        r = alice.post(f"/web/conversations/{cid}/messages", json=body)
        assert r.status_code in (400, 404), r.text
        assert r.json()["error"]["param"] == param, r.text
    assert alice.get(f"/web/conversations/{cid}").json()["messages"] == []
    assert alice.patch(f"/web/conversations/{cid}", json={"title": " \n "}).status_code == 400


def test_stopped_answer_keeps_its_partial_text(fake: FakeWorld, alice: Browser) -> None:
    """The stop button closes the stream: the partial answer is saved and marked ``stopped``."""
    cid = alice.post("/web/conversations", json={}).json()["id"]
    user_id = alice.get("/web/session").json()["user"]["id"]
    fake.engine.enqueue(["a", "b", "c", "d", "e", "f"])

    async def run() -> None:
        turn = await start_turn(db(fake), fake.app.state.pipeline, user_id, cid,
                                TurnRequest("go"))
        seen = 0
        async for item in turn.events():
            if isinstance(item, ChatDelta):
                seen += 1
                if seen == 2:
                    break
        turn.close()

    # in a thread of its own: a Playwright test may hold this thread's event loop
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()
    answer = alice.get(f"/web/conversations/{cid}").json()["messages"][1]
    assert answer["status"] == "stopped" and answer["content"] == "ab"


def test_interrupted_answers_are_marked_at_start(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = open_database(settings)
    with first.session() as s:
        u = User(email="x@y.z", password_hash="h")
        s.add(u)
        s.flush()
        s.add(Conversation(id="c1", user_id=u.id))
        s.flush()
        s.add(Message(conversation_id="c1", role="assistant", content="half an ans",
                      status="streaming"))
    first.close()
    again = open_database(settings)
    with again.session() as s:
        m = s.scalars(select(Message)).one()
        assert (m.status, m.content) == ("interrupted", "half an ans")


def test_search_rename_delete(fake: FakeWorld, alice: Browser) -> None:
    ids = [alice.post("/web/conversations", json={"title": t}).json()["id"]
           for t in ["Paris trip", "Taxes 100%", "paris again"]]
    found = alice.get("/web/conversations", params={"q": "PARIS"}).json()["data"]
    assert sorted(c["id"] for c in found) == sorted([ids[0], ids[2]])
    assert [c["id"] for c in alice.get("/web/conversations",
                                       params={"q": "0%"}).json()["data"]] == [ids[1]]
    assert alice.patch(f"/web/conversations/{ids[0]}",
                       json={"title": "Rome"}).json()["title"] == "Rome"
    assert alice.delete(f"/web/conversations/{ids[0]}").status_code == 200
    assert alice.get(f"/web/conversations/{ids[0]}").status_code == 404
    assert alice.delete("/web/conversations").json()["deleted"] == 2
    assert count(fake, Conversation) == 0


def test_export_has_all_data_and_no_secrets(fake: FakeWorld, alice: Browser) -> None:
    cid = alice.post("/web/conversations", json={}).json()["id"]
    fake.engine.enqueue(["fine"])
    send(alice, cid, content="how are you")
    key = alice.post("/web/keys", json={"name": "k"}).json()["key"]
    r = alice.get("/web/export")
    assert r.status_code == 200
    assert "attachment" in r.headers["content-disposition"]
    data = r.json()
    assert data["account"]["email"] == "alice@example.org"
    assert [m["content"] for m in data["conversations"][0]["messages"]] == ["how are you", "fine"]
    assert data["api_keys"][0]["name"] == "k"
    assert key not in r.text and "argon2" not in r.text


def test_delete_account_is_a_hard_delete_and_reclaims_space(
    fake: FakeWorld, alice: Browser, bob: Browser
) -> None:
    cid = bob.post("/web/conversations", json={}).json()["id"]
    fake.engine.enqueue(["y" * 200] * 1000)
    send(bob, cid, content="z" * 1000)
    with db(fake).session() as s:  # and a long history (as after months of use)
        conv = s.get(Conversation, cid)
        assert conv is not None
        s.add_all([Message(conversation_id=cid, role="user", content=f"{i} " + "q" * 100_000)
                   for i in range(40)])
    bob.post("/web/keys", json={"name": "k"})
    path = fake.app.state.settings.home / "cove.db"
    on_file = db(fake).engine.url.get_backend_name() == "sqlite"  # PostgreSQL: rows only
    db(fake).reclaim_space()
    big = path.stat().st_size if on_file else 0
    assert big > 3_000_000 or not on_file
    assert bob.delete("/web/account", json={"password": "wrong one"}).status_code == 401
    r = bob.delete("/web/account", json={"password": PASSWORD})
    assert r.status_code == 200
    if on_file:
        assert path.stat().st_size < big / 4
    assert count(fake, Message) == 0 and count(fake, Conversation) == 0
    assert count(fake, User) == 1
    assert bob.get("/web/session").json()["user"] is None
    r = bob.client.post("/web/login", json={"email": "bob@example.org", "password": PASSWORD})
    assert r.status_code == 401


def test_retention_deletes_old_conversations(fake: FakeWorld, alice: Browser) -> None:
    old = alice.post("/web/conversations", json={"title": "old"}).json()["id"]
    new = alice.post("/web/conversations", json={"title": "new"}).json()["id"]
    with db(fake).session() as s:
        s.execute(update(Conversation).where(Conversation.id == old)
                  .values(updated_at=utcnow() - timedelta(days=40)))
    assert apply_retention(db(fake), 0) == 0
    assert apply_retention(db(fake), 30) == 1
    assert [c["id"] for c in alice.get("/web/conversations").json()["data"]] == [new]


def test_signup_modes(tmp_path: Path) -> None:
    world = FakeWorld(Settings(home=tmp_path, signup="invite"), ScriptedEngine())
    admin = Browser(world.client)
    assert admin.signup("root@example.org").json()["user"]["role"] == "admin"
    other = Browser(local_client(world.app))
    assert other.signup("u@example.org").status_code == 403
    code = admin.post("/web/admin/invites").json()["code"]
    r = other.signup("u@example.org", invite=code)
    assert r.status_code == 200 and r.json()["user"]["role"] == "user"
    assert Browser(local_client(world.app)).signup("v@example.org", invite=code).status_code == 403
    closed = FakeWorld(Settings(home=tmp_path / "c", signup="closed"), ScriptedEngine())
    root = Browser(closed.client)
    assert root.signup("root@example.org").status_code == 200  # the first account
    assert Browser(local_client(closed.app)).signup("x@example.org").status_code == 403
    made = root.post("/web/admin/users", json={"email": "x@example.org", "password": PASSWORD})
    assert made.status_code == 200 and made.json()["role"] == "user"
    assert root.signup("root@example.org").status_code in (403, 409)


def test_signup_validation(fake: FakeWorld) -> None:
    b = Browser(fake.client)
    assert b.signup("not-an-email").json()["error"]["param"] == "email"
    assert b.signup("a@b.c", password="short").json()["error"]["param"] == "password"
    assert b.signup("A@B.C").status_code == 200
    r = Browser(local_client(fake.app)).signup("a@b.c")
    assert r.status_code == 409


def test_guest_chat_streams_and_stores_nothing(fake: FakeWorld) -> None:
    fake.engine.enqueue(["guest ", "answer"])
    r = fake.client.post("/web/guest/chat", json={"messages": [
        {"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "guest secret words"}]})
    assert r.status_code == 200
    evs = events(r.text)
    assert text_of(evs) == "guest answer" and evs[-1]["type"] == "done"
    assert count(fake, Message) == 0 and count(fake, Conversation) == 0
    db_bytes = b"".join(p.read_bytes() for p in (fake.app.state.settings.home).glob("cove.db*"))
    assert b"guest secret words" not in db_bytes  # (nothing on disk at all with PostgreSQL)


def test_guest_chat_can_be_turned_off(tmp_path: Path) -> None:
    world = FakeWorld(Settings(home=tmp_path, guest=False), ScriptedEngine())
    r = world.client.post("/web/guest/chat", json={"messages": [{"role": "user",
                                                                 "content": "x"}]})
    assert r.status_code == 403


def test_first_message_of_only_spaces_at_the_start_gets_a_title(fake: FakeWorld,
                                                                alice: Browser) -> None:
    cid = alice.post("/web/conversations", json={}).json()["id"]
    fake.engine.enqueue(["ok"])
    send(alice, cid, content=" " * 60 + "hello there")
    assert alice.get(f"/web/conversations/{cid}").json()["title"] == "hello there"


def test_concurrent_signups_on_a_closed_server_make_one_account(tmp_path: Path) -> None:
    world = FakeWorld(Settings(home=tmp_path / "race", signup="closed"), ScriptedEngine())

    def one(i: int) -> int:
        return int(Browser(local_client(world.app)).signup(f"racer{i}@example.org").status_code)

    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(one, range(6)))
    assert codes == [200] + [403] * 5
    with world.app.state.db.session() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 1


def test_a_refused_answer_is_a_503_and_the_question_is_kept(
        fake: FakeWorld, alice: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    """No slot in time (queue deadline, fair share): the send answers 503 with Retry-After
    before any stream byte (it was an error event after a 200); the user's message stays and
    the answer is marked ``error``."""
    from cove.chat import ChatStream
    from cove.errors import Overloaded

    async def refused(self: ChatStream) -> None:
        self.cancel()
        raise Overloaded("no generation slot became free within 60 s", retry_after=7)

    monkeypatch.setattr(ChatStream, "admitted", refused)
    cid = alice.post("/web/conversations", json={}).json()["id"]
    r = alice.post(f"/web/conversations/{cid}/messages", json={"content": "hello?"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "7"
    assert r.json()["error"]["code"] == "overloaded"
    messages = alice.get(f"/web/conversations/{cid}").json()["messages"]
    assert [(m["role"], m["status"]) for m in messages][-2:] == [
        ("user", messages[-2]["status"]), ("assistant", "error")]
    assert messages[-2]["content"] == "hello?"
