"""OpenAI's Files and Vector Stores endpoints driven by the official ``openai`` client (on
SQLite and PostgreSQL): upload, create a store with files, list, search, remove, delete; a
file Cove cannot read fails with ``last_error``; another account's ids are 404."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest

from cove.features.search.store import Chunk, Document, StoredFile
from tests.conftest import FakeWorld, local_client
from tests.features.search.files import make_pdf
from tests.features.search.test_routes import NOTES, count
from tests.web.helpers import PASSWORD, Browser


def client_of(fake: FakeWorld, b: Browser) -> openai.OpenAI:
    key = b.post("/web/keys", json={"name": "sdk"}).json()["key"]
    return openai.OpenAI(base_url="http://localhost/v1", api_key=key, max_retries=0,
                         http_client=local_client(fake.app))


def test_official_client_vector_store_calls(fake: FakeWorld, alice: Browser,
                                            bob: Browser) -> None:
    client = client_of(fake, alice)
    notes = client.files.create(file=("notes.md", NOTES.encode()), purpose="assistants")
    trip = client.files.create(file=("trip.pdf", make_pdf(["The ferry leaves at noon."])),
                               purpose="assistants")
    assert (notes.filename, notes.bytes, notes.object) == ("notes.md", len(NOTES), "file")
    assert client.files.content(notes.id).content == NOTES.encode()
    assert {f.id for f in client.files.list()} == {notes.id, trip.id}

    store = client.vector_stores.create(name="travel", file_ids=[notes.id])
    assert store.file_counts.completed == 1 and store.status == "completed"
    added = client.vector_stores.files.create(vector_store_id=store.id, file_id=trip.id)
    assert added.status == "completed" and added.last_error is None
    assert {f.id for f in client.vector_stores.files.list(vector_store_id=store.id)} == {
        notes.id, trip.id}
    assert client.vector_stores.retrieve(store.id).file_counts.total == 2

    results = client.vector_stores.search(vector_store_id=store.id, query="when is the ferry?")
    first = results.data[0]
    assert (first.file_id, first.filename) == (trip.id, "trip.pdf")
    assert "noon" in first.content[0].text and first.attributes["page"] == 1

    bad = client.files.create(file=("fake.pdf", b"not a pdf"), purpose="assistants")
    failed = client.vector_stores.files.create(vector_store_id=store.id, file_id=bad.id)
    assert failed.status == "failed" and failed.last_error is not None
    assert failed.last_error.code == "unsupported_file"

    other = client_of(fake, bob)
    for call in (lambda: other.vector_stores.retrieve(store.id),
                 lambda: other.vector_stores.search(vector_store_id=store.id, query="ferry"),
                 lambda: other.files.retrieve(notes.id),
                 lambda: other.files.content(notes.id),
                 lambda: other.vector_stores.files.create(vector_store_id=store.id,
                                                          file_id=notes.id),
                 lambda: other.files.delete(notes.id),
                 lambda: other.vector_stores.delete(store.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert list(other.vector_stores.list()) == [] and list(other.files.list()) == []

    client.vector_stores.files.delete(vector_store_id=store.id, file_id=notes.id)
    assert [f.id for f in client.vector_stores.files.list(vector_store_id=store.id)] == [trip.id]
    assert client.files.retrieve(notes.id).id == notes.id  # the file itself stays
    assert client.files.delete(trip.id).deleted  # ... and deleting one empties it from stores
    assert list(client.vector_stores.files.list(vector_store_id=store.id)) == []
    assert client.vector_stores.delete(store.id).deleted
    assert count(fake, Document) == count(fake, Chunk) == 0
    assert count(fake, StoredFile) == 2  # notes and the bad file, until deleted
    exported = alice.get("/web/export").json()["knowledge"]["files"]
    assert [f["filename"] for f in exported] == ["notes.md", "fake.pdf"]
    assert base64.b64decode(exported[0]["content_base64"]) == NOTES.encode()
    other.files.create(file=("bob.txt", b"bob's file"), purpose="assistants")
    other.vector_stores.create(name="bob's", file_ids=[other.files.list().data[0].id])
    assert count(fake, StoredFile) == 3 and count(fake, Chunk) == 1
    assert bob.request("DELETE", "/web/account", json={"password": PASSWORD}).status_code \
        == 200
    assert count(fake, StoredFile) == 2 and count(fake, Chunk) == 0


def test_the_same_file_is_not_stored_twice_in_a_store(fake: FakeWorld, alice: Browser) -> None:
    client = client_of(fake, alice)
    notes = client.files.create(file=("notes.md", NOTES.encode()), purpose="assistants")
    twin = client.files.create(file=("notes.md", NOTES.encode()), purpose="assistants")
    store = client.vector_stores.create(name="garden", file_ids=[notes.id, twin.id])
    assert store.file_counts.completed == 1  # the twin in file_ids: skipped
    chunks = count(fake, Chunk)
    again = client.vector_stores.files.create(vector_store_id=store.id, file_id=notes.id)
    assert (again.id, again.status) == (notes.id, "completed")  # as OpenAI: the same object
    with pytest.raises(openai.ConflictError) as e:
        client.vector_stores.files.create(vector_store_id=store.id, file_id=twin.id)
    body = e.value.body
    assert isinstance(body, dict) and body["code"] == "duplicate_file"
    assert body["param"] == "file_id" and notes.id in body["message"]
    assert [f.id for f in client.vector_stores.files.list(vector_store_id=store.id)] == [
        notes.id]
    assert count(fake, Document) == 1 and count(fake, Chunk) == chunks
    # a document added from the web app holds its bytes just the same
    uploaded = alice.post(f"/web/knowledge/collections/{store.id[3:]}/documents",
                          files={"file": ("trip.txt", b"The ferry leaves at noon.")})
    assert uploaded.status_code == 201, uploaded.text
    trip = client.files.create(file=("trip.txt", b"The ferry leaves at noon."),
                               purpose="assistants")
    with pytest.raises(openai.ConflictError) as e:
        client.vector_stores.files.create(vector_store_id=store.id, file_id=trip.id)
    assert f"document {uploaded.json()['id']} ('trip.txt')" in str(e.value)
    other = client.vector_stores.create(name="elsewhere", file_ids=[twin.id])
    assert other.file_counts.completed == 1  # another store is another collection


def test_without_an_account_they_need_a_key(fake: FakeWorld) -> None:
    r = fake.client.get("/v1/vector_stores")
    assert r.status_code == 401 and r.json()["error"]["code"]


def test_names_and_queries_are_checked_before_the_database(fake: FakeWorld,
                                                           alice: Browser) -> None:
    """A NUL in a file or store name never reaches the database (PostgreSQL refuses NUL in
    text: it was a 500), and a search query is bounded as on the other search routes."""
    client = client_of(fake, alice)

    def raw_upload(path: str, name: bytes, **headers: str) -> Any:
        """A multipart upload whose filename bytes are sent as they are (clients escape)."""
        body = (b"--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
                b"assistants\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; "
                b"filename=\"" + name + b"\"\r\n\r\n" + NOTES.encode() + b"\r\n--b--\r\n")
        return fake.client.post(path, content=body, headers={
            "content-type": "multipart/form-data; boundary=b", **headers})

    f = raw_upload("/v1/files", b"a\x00b\x07.md",
                   authorization=f"Bearer {client.api_key}")
    assert f.status_code == 200 and f.json()["filename"] == "ab.md", f.text
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.create(name="v\x00s")
    store = client.vector_stores.create(name="garden", file_ids=[f.json()["id"]])
    assert [x.filename for x in client.vector_stores.search(
        vector_store_id=store.id, query="ladybirds")][:1] == ["ab.md"]
    for query in ("ladybirds " * 500, ["ladybirds"] * 500):
        with pytest.raises(openai.BadRequestError) as e:
            client.vector_stores.search(vector_store_id=store.id, query=query)
        assert isinstance(e.value.body, dict) and e.value.body["param"] == "query"
    web = raw_upload(f"/web/knowledge/collections/{store.id[3:]}/documents", b"c\x00d.md",
                     **{"x-csrf-token": alice.csrf})
    assert web.status_code == 201 and web.json()["filename"] == "cd.md", web.text
