"""``/web/knowledge`` on SQLite and PostgreSQL: ingest, search, delete, export, account deletion,
and another user's collections and documents answering 404 on every route."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text

from cove.features.search.store import Chunk, Collection, Document
from tests.conftest import FakeWorld, local_client
from tests.features.search.files import make_docx, make_pdf
from tests.web.helpers import PASSWORD, Browser

NOTES = ("# Garden\n\nTomatoes need six hours of sun a day.\n\n"
         "## Pests\n\nAphids are eaten by ladybirds.\n")


def count(fake: FakeWorld, table: Any) -> int:
    with fake.app.state.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def keyword_entries(fake: FakeWorld, word: str) -> int:
    db = fake.app.state.db
    with db.session() as s:
        if db.is_sqlite:
            q = "SELECT count(*) FROM search_chunks_fts WHERE search_chunks_fts MATCH :w"
        else:
            q = "SELECT count(*) FROM search_chunks WHERE tsv @@ plainto_tsquery('english', :w)"
        return int(s.scalar(text(q), {"w": word}) or 0)


def new_collection(b: Browser, name: str = "garden") -> int:
    r = b.post("/web/knowledge/collections", json={"name": name})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def upload(b: Browser, cid: int, name: str, data: bytes) -> Any:
    return b.post(f"/web/knowledge/collections/{cid}/documents", files={"file": (name, data)})


def search(b: Browser, cid: int, query: str) -> Any:
    return b.post("/web/knowledge/search", json={"query": query, "collections": [cid]})


def test_ingest_search_and_delete(fake: FakeWorld, alice: Browser) -> None:
    cid = new_collection(alice)
    r = upload(alice, cid, "notes.md", NOTES.encode())
    assert r.status_code == 201, r.text
    md = r.json()
    assert md["kind"] == "markdown" and md["chunks"] == 2
    pdf = upload(alice, cid, "guide.pdf", make_pdf(["Compost heaps need turning weekly.", ""]))
    assert pdf.status_code == 201, pdf.text
    assert pdf.json()["pages"] == 2 and "page 2 has no text layer" in pdf.json()["notes"][0]
    docx = upload(alice, cid, "plan.docx", make_docx([("h1", "Plan"), ("p", "Plant garlic in "
                                                                           "October.")]))
    assert docx.status_code == 201, docx.text

    hits = search(alice, cid, "what eats aphids?").json()["results"]
    assert hits[0]["document"] == "notes.md" and hits[0]["heading"] == "Garden > Pests"
    assert "ladybirds" in hits[0]["snippet"]
    hit = search(alice, cid, "turning the compost").json()["results"][0]
    assert (hit["document"], hit["page"]) == ("guide.pdf", 1)
    assert search(alice, cid, 'garlic" OR NOT *').json()["results"][0]["document"] == "plan.docx"

    listing = alice.get(f"/web/knowledge/collections/{cid}").json()
    assert listing["documents"] == 3 and len(listing["items"]) == 3
    assert alice.delete(f"/web/knowledge/documents/{md['id']}").status_code == 200
    assert keyword_entries(fake, "ladybirds") == 0
    assert all(h["document"] != "notes.md" for h in search(alice, cid, "aphids").json()["results"])
    assert alice.delete(f"/web/knowledge/collections/{cid}").status_code == 200
    assert count(fake, Chunk) == count(fake, Document) == count(fake, Collection) == 0
    assert keyword_entries(fake, "garlic") == 0


def test_bad_files_keep_nothing_and_answer_in_shape(fake: FakeWorld, alice: Browser) -> None:
    cid = new_collection(alice)
    for name, data, code in [("fake.pdf", b"hello", "unsupported_file"),
                             ("cut.pdf", make_pdf(["Some words."])[:300], "unreadable_file"),
                             ("run.exe", b"MZ", "unsupported_file"),
                             ("empty.txt", b"  \n", "empty_file")]:
        r = upload(alice, cid, name, data)
        assert r.status_code == 400, (name, r.text)
        assert r.json()["error"]["code"] == code
    assert count(fake, Document) == count(fake, Chunk) == 0
    assert alice.post("/web/knowledge/collections", json={"name": "garden"}).status_code == 409
    assert alice.post("/web/knowledge/collections", json={"name": "  "}).status_code == 400


def test_upload_size_limit(fake: FakeWorld, alice: Browser) -> None:
    cid = new_collection(alice)
    fake.app.state.settings.max_upload_bytes = 2048
    r = upload(alice, cid, "big.txt", b"words " * 1000)
    assert r.status_code == 413 and "COVE_MAX_UPLOAD_BYTES" in r.json()["error"]["message"]
    assert count(fake, Document) == 0


def test_another_users_collections_and_documents_are_404(fake: FakeWorld, alice: Browser,
                                                         bob: Browser) -> None:
    cid = new_collection(alice)
    did = upload(alice, cid, "notes.md", NOTES.encode()).json()["id"]
    routes = [("GET", f"/web/knowledge/collections/{cid}", {}),
              ("DELETE", f"/web/knowledge/collections/{cid}", {}),
              ("POST", f"/web/knowledge/collections/{cid}/documents",
               {"files": {"file": ("x.txt", b"bob's words")}}),
              ("GET", f"/web/knowledge/documents/{did}", {}),
              ("DELETE", f"/web/knowledge/documents/{did}", {}),
              ("POST", "/web/knowledge/search", {"json": {"query": "aphids",
                                                          "collections": [cid]}})]
    for method, path, kw in routes:
        r = bob.request(method, path, **kw)
        assert r.status_code == 404, (method, path, r.text)
    assert bob.get("/web/knowledge/collections").json() == {"collections": []}
    assert count(fake, Document) == 1 and count(fake, Chunk) == 2
    # the same name is free for bob
    assert new_collection(bob) != cid
    anonymous = local_client(fake.app).get("/web/knowledge/collections")
    assert anonymous.status_code == 401


def test_export_and_account_deletion(fake: FakeWorld, alice: Browser, bob: Browser) -> None:
    cid = new_collection(bob, "bob's")
    upload(bob, cid, "notes.md", NOTES.encode())
    exported = bob.get("/web/export").json()["knowledge"]["collections"]
    assert exported[0]["name"] == "bob's"
    doc = exported[0]["documents"][0]
    assert doc["filename"] == "notes.md" and doc["chunks"][1]["heading"] == "Garden > Pests"
    assert "ladybirds" in doc["chunks"][1]["text"]
    assert alice.get("/web/export").json()["knowledge"] == {"collections": [], "files": []}

    r = bob.request("DELETE", "/web/account", json={"password": PASSWORD})
    assert r.status_code == 200, r.text
    assert count(fake, Collection) == count(fake, Document) == count(fake, Chunk) == 0
    assert keyword_entries(fake, "ladybirds") == 0


def test_the_same_file_again_is_409_and_stored_once(fake: FakeWorld, alice: Browser) -> None:
    cid = new_collection(alice)
    first = upload(alice, cid, "notes.md", NOTES.encode())
    assert first.status_code == 201, first.text
    chunks = count(fake, Chunk)
    again = upload(alice, cid, "notes.md", NOTES.encode())
    assert again.status_code == 409, again.text
    error = again.json()["error"]
    assert (error["code"], error["param"], error["type"]) == (
        "duplicate_document", "file", "invalid_request_error")
    assert f"document {first.json()['id']}" in error["message"]
    assert "'notes.md'" in error["message"] and "'garden'" in error["message"]
    assert count(fake, Document) == 1 and count(fake, Chunk) == chunks
    assert keyword_entries(fake, "ladybirds") == 1
    # what differs is a new document: other bytes, another name, another collection
    assert upload(alice, cid, "notes.md", NOTES.encode() + b"\nMore.").status_code == 201
    assert upload(alice, cid, "copy.md", NOTES.encode()).status_code == 201
    assert upload(alice, new_collection(alice, "other"), "notes.md",
                  NOTES.encode()).status_code == 201
    assert count(fake, Document) == 4
