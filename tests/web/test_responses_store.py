"""Stored Responses API responses on SQLite and PostgreSQL: owned by the API key's user (another
user gets 404 everywhere), "local" (no owner) while the server is open, in the export, erased
with the account, purged by retention, marked failed after a crash; the migration builds
exactly the tables the code declares."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import openai
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, update

from cove.app import apply_retention
from cove.store.db import Database, open_database
from cove.store.tables import Base, StoredResponse, utcnow
from tests.conftest import FakeWorld, local_client
from tests.web.helpers import PASSWORD, Browser


def db(fake: FakeWorld) -> Database:
    return fake.app.state.db  # type: ignore[no-any-return]


def rows(fake: FakeWorld) -> int:
    with db(fake).session() as s:
        return int(s.scalar(select(func.count()).select_from(StoredResponse)) or 0)


def client_of(fake: FakeWorld, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://localhost/v1", api_key=key, max_retries=0,
                         http_client=fake.client)


def key_of(b: Browser) -> str:
    return str(b.post("/web/keys", json={"name": "sdk"}).json()["key"])


def respond(fake: FakeWorld, client: openai.OpenAI, text: str, **kw: Any) -> Any:
    fake.engine.enqueue(["answer to ", text])
    return client.responses.create(model="scripted", input=text, **kw)


def test_responses_belong_to_the_key_owner(fake: FakeWorld, alice: Browser,
                                           bob: Browser) -> None:
    a, b = client_of(fake, key_of(alice)), client_of(fake, key_of(bob))
    mine = respond(fake, a, "secret of alice")
    assert a.responses.retrieve(mine.id).output_text == "answer to secret of alice"
    for call in (lambda: b.responses.retrieve(mine.id),
                 lambda: b.responses.input_items.list(mine.id),
                 lambda: b.responses.delete(mine.id)):
        try:
            call()
        except openai.NotFoundError:
            continue
        raise AssertionError("bob reached alice's response")
    try:
        respond(fake, b, "continue hers", previous_response_id=mine.id)
        raise AssertionError("bob continued alice's response")
    except openai.NotFoundError as e:
        assert e.code == "previous_response_not_found"
    assert "secret of alice" not in bob.get("/web/export").text
    # a web session reaches its own responses too (cookie + CSRF token)
    got = alice.get(f"/v1/responses/{mine.id}")
    assert got.status_code == 200 and got.json()["id"] == mine.id
    assert bob.get(f"/v1/responses/{mine.id}").status_code == 404
    a.responses.delete(mine.id)
    assert rows(fake) == 0


def test_without_a_key_once_accounts_exist_is_401(fake: FakeWorld, alice: Browser) -> None:
    anonymous = local_client(fake.app)  # no session cookie
    r = anonymous.post("/v1/responses", json={"model": "scripted", "input": "hi"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_export_has_responses_with_their_input_items(fake: FakeWorld, alice: Browser) -> None:
    a = client_of(fake, key_of(alice))
    first = respond(fake, a, "first question", instructions="be kind", metadata={"tag": "t"})
    respond(fake, a, "second question", previous_response_id=first.id)
    respond(fake, a, "not kept", store=False)
    data = alice.get("/web/export").json()
    one, two = data["responses"]
    assert one["response"]["id"] == first.id and one["response"]["metadata"] == {"tag": "t"}
    assert one["response"]["instructions"] == "be kind"
    assert [i["content"][0]["text"] for i in two["input_items"]] == [
        "first question", "answer to first question", "second question"]
    assert "not kept" not in str(data)


def test_account_erasure_deletes_responses(fake: FakeWorld, alice: Browser,
                                           bob: Browser) -> None:
    respond(fake, client_of(fake, key_of(alice)), "alice keeps this")
    respond(fake, client_of(fake, key_of(bob)), "bob's words")
    assert rows(fake) == 2
    assert bob.delete("/web/account", json={"password": PASSWORD}).status_code == 200
    with db(fake).session() as s:
        left = list(s.scalars(select(StoredResponse)))
    assert len(left) == 1 and "bob's words" not in left[0].input_items


def test_retention_purges_old_responses(fake: FakeWorld, alice: Browser) -> None:
    a = client_of(fake, key_of(alice))
    old, new = respond(fake, a, "old one"), respond(fake, a, "new one")
    with db(fake).session() as s:
        s.execute(update(StoredResponse).where(StoredResponse.id == old.id)
                  .values(created_at=utcnow() - timedelta(days=40)))
    assert apply_retention(db(fake), 0) == 0
    assert apply_retention(db(fake), 30) == 1
    assert a.responses.retrieve(new.id).id == new.id
    try:
        a.responses.retrieve(old.id)
        raise AssertionError("an expired response is still there")
    except openai.NotFoundError:
        pass


def test_local_responses_have_no_owner_and_stay_local(fake: FakeWorld) -> None:
    local = client_of(fake, "unused")  # the open server: any key is ignored, nobody owns it
    made = respond(fake, local, "made before any account")
    assert local.responses.retrieve(made.id).id == made.id
    with db(fake).session() as s:
        assert s.get(StoredResponse, made.id).user_id is None  # type: ignore[union-attr]
    alice = Browser(fake.client)
    assert alice.signup("alice@example.org").status_code == 200
    a = client_of(fake, key_of(alice))
    try:
        a.responses.retrieve(made.id)
        raise AssertionError("a local response became alice's")
    except openai.NotFoundError:
        pass
    assert "made before any account" not in alice.get("/web/export").text
    assert apply_retention(db(fake), 1) == 0  # still covered by retention once old
    with db(fake).session() as s:
        s.execute(update(StoredResponse).values(created_at=utcnow() - timedelta(days=2)))
    assert apply_retention(db(fake), 1) == 1


def test_a_response_cut_off_by_a_crash_is_failed_at_the_next_start(fake: FakeWorld) -> None:
    made = respond(fake, client_of(fake, "unused"), "hello")
    with db(fake).session() as s:
        s.execute(update(StoredResponse).values(status="in_progress"))
    db(fake).release()  # PostgreSQL: the crashed process holds the database no more
    open_database(fake.app.state.settings).close()  # what the next start does
    got = fake.client.get(f"/v1/responses/{made.id}").json()
    assert got["status"] == "failed" and got["error"]["code"] == "server_error"
    r = fake.client.post("/v1/responses", json={"model": "scripted", "input": "x",
                                                "previous_response_id": made.id})
    assert r.status_code == 400 and r.json()["error"]["param"] == "previous_response_id"


def _orm_managed(obj: object, name: str | None, kind: str, reflected: bool,
                 other: object) -> bool:
    """What the ORM's tables describe: the search index's full-text machinery (SQLite FTS5
    virtual table and its shadow tables; PostgreSQL's generated tsvector column and its GIN
    index), made by migration 0003 with raw SQL, is not."""
    return not (name or "").startswith(("search_chunks_fts", "ix_search_chunks_tsv")) and not (
        kind == "column" and name == "tsv")


def test_migrations_match_the_tables(fake: FakeWorld) -> None:
    with db(fake).engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": _orm_managed})
        assert compare_metadata(context, Base.metadata) == []
