"""Knowledge packs on SQLite and PostgreSQL: registering ZIMs built here with libzim's Creator
(one with a full-text index, one with titles only), listing, searching, the articles served
offline (sanitised, with the pack's images), guests, packs in ``cove.search``, and bad files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cove.features.search import packs, zim
from cove.store.db import Database
from tests.conftest import FakeWorld, local_client
from tests.features.search.zims import DATE, PNG, make_zim, truncated
from tests.web.helpers import Browser

ASH = "How high can the eruption column of ash rise?"


@pytest.fixture(scope="module")
def zims(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("zims")
    full = make_zim(d / "geo.zim", fulltext=True)
    titles = make_zim(d / "titles.zim", fulltext=False, name="geo_titles", title="Titles Only")
    (d / "notes.txt").write_text("this is not a ZIM archive\n" * 100)
    return {"full": full, "titles": titles, "truncated": truncated(full, d / "half.zim"),
            "not_zim": d / "notes.txt", "missing": d / "nowhere.zim"}


def add(b: Browser, path: Path, **extra: str) -> Any:
    return b.post("/web/knowledge/packs", json={"path": str(path), **extra})


def search(b: Browser, query: str, **extra: object) -> Any:
    return b.post("/web/knowledge/packs/search", json={"query": query, **extra})


def test_add_list_and_search(fake: FakeWorld, alice: Browser, bob: Browser,
                             zims: dict[str, Path]) -> None:
    r = add(alice, zims["full"])
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "geo_en_all" and r.json()["url"] == "/knowledge/geo_en_all/"
    assert add(alice, zims["titles"]).status_code == 201
    assert add(bob, zims["titles"]).status_code == 403  # only admins register packs
    listed = {p["name"]: p for p in bob.get("/web/knowledge/packs").json()["packs"]}
    assert set(listed) == {"geo_en_all", "geo_titles"}
    geo = listed["geo_en_all"]
    assert (geo["title"], geo["language"], geo["date"], geo["articles"], geo["fulltext"]) == (
        "Tiny Geology", "eng", DATE, 4, True)
    assert listed["geo_titles"]["fulltext"] is False

    # full-text: the section that answers, ranked first, cited with pack, title and date
    hits = search(bob, ASH, packs=["geo_en_all"]).json()["results"]
    top = hits[0]
    assert (top["kind"], top["pack"], top["title"], top["heading"], top["date"]) == (
        "pack", "geo_en_all", "Volcano", "Volcano > Eruptions", DATE)
    assert "fifty kilometres" in top["text"] and top["url"] == "/knowledge/geo_en_all/Volcano"
    assert {"url", "text", "snippet", "score", "pack_title", "path"} <= set(top)
    assert "kilometres" in top["snippet"]
    # a word only in the body (not a title) is found through the full-text index alone
    assert search(bob, "lactobacilli", packs=["geo_en_all"]).json()["results"][0][
        "title"] == "Sourdough"
    assert search(bob, "lactobacilli", packs=["geo_titles"]).json()["results"] == []
    # titles only: suggestions by title, then the article's best section
    hits = search(bob, "sourdough starter feeding", packs=["geo_titles"]).json()["results"]
    assert hits[0]["title"] == "Sourdough" and hits[0]["pack_title"] == "Titles Only"
    assert {h["pack"] for h in search(bob, "basalt").json()["results"]} == {
        "geo_en_all", "geo_titles"}  # no names: every pack

    r = search(bob, "x", packs=["nope"])
    assert r.status_code == 404 and r.json()["error"]["param"] == "pack"
    assert alice.delete("/web/knowledge/packs/geo_titles").json()["deleted"] == "geo_titles"
    assert bob.delete("/web/knowledge/packs/geo_en_all").status_code == 403
    assert [p["name"] for p in bob.get("/web/knowledge/packs").json()["packs"]] == ["geo_en_all"]


@pytest.mark.parametrize("query", ['lava" OR (x', "title:volcano", "molt*", "NOT lava AND",
                                   "+lava -rock ~near", "lava NEAR/2 rock", '""', "ünïcode"])
def test_user_text_is_never_xapian_syntax(zims: dict[str, Path], query: str) -> None:
    assert all(w.isalnum() or "_" in w for w in zim.xapian_words(query))
    found = zim.find(zims["full"], query)  # never a Xapian syntax error
    assert isinstance(found, list)
    if "lava" in query.lower():
        assert "Volcano" in found


def test_articles_are_sanitised_with_their_images(fake: FakeWorld, alice: Browser,
                                                  zims: dict[str, Path]) -> None:
    add(alice, zims["full"])
    r = alice.get("/knowledge/geo_en_all/Volcano")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    page = r.text
    assert "fifty kilometres" in page and "Tiny Geology" in page and DATE in page
    for bad in ("<script", "alert(", "onerror", "onload", "onclick", "https:", "javascript:",
                "//cdn.", "<iframe", "<style", "<link", "/v1/models", "document.cookie"):
        assert bad not in page, bad
    assert 'src="images/lava.png"' in page and 'href="Sourdough"' in page
    csp = r.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp and "img-src 'self'" in csp

    img = alice.get("/knowledge/geo_en_all/images/lava.png")
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert img.content == PNG
    assert alice.get("/knowledge/geo_en_all/app.js").status_code == 404  # scripts not served
    r = alice.get("/knowledge/geo_en_all/Volcanoes", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/knowledge/geo_en_all/Volcano"
    r = alice.get("/knowledge/geo_en_all/", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/knowledge/geo_en_all/home"
    r = alice.get("/knowledge/geo_en_all/Nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert alice.get("/knowledge/other/Volcano").status_code == 404


def test_guests_search_packs_and_read_articles(fake: FakeWorld, alice: Browser,
                                               zims: dict[str, Path]) -> None:
    add(alice, zims["full"])
    guest = Browser(local_client(fake.app))  # no account, no session
    assert [p["name"] for p in guest.get("/web/knowledge/packs").json()["packs"]] == [
        "geo_en_all"]
    assert search(guest, ASH).json()["results"][0]["title"] == "Volcano"
    assert guest.get("/knowledge/geo_en_all/Volcano").status_code == 200
    assert guest.get("/knowledge/geo_en_all/images/lava.png").content == PNG
    # the Search switch's sources and one search across kinds offer the packs to guests too
    offered = guest.get("/web/search/sources").json()
    assert offered["collections"] is None and [p["name"] for p in offered["packs"]] == [
        "geo_en_all"]
    r = guest.post("/web/search", json={"query": ASH, "packs": True})
    assert r.status_code == 200 and r.json()["results"][0]["kind"] == "pack"
    r = guest.post("/web/search", json={"query": ASH, "packs": "all"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "cove.search.packs"
    assert add(guest, zims["titles"]).status_code == 401  # registering needs an admin
    # documents stay per user
    r = guest.post("/web/knowledge/search", json={"query": "lava", "collections": [1]})
    assert r.status_code == 401


def test_guest_use_off_closes_the_packs(fake: FakeWorld, alice: Browser,
                                        zims: dict[str, Path]) -> None:
    add(alice, zims["full"])
    fake.app.state.settings.guest = False
    guest = Browser(local_client(fake.app))
    assert guest.get("/web/knowledge/packs").status_code == 401
    assert guest.get("/knowledge/geo_en_all/Volcano").status_code == 401
    assert alice.get("/knowledge/geo_en_all/Volcano").status_code == 200


def test_packs_as_sources_of_an_answer(fake: FakeWorld, alice: Browser,
                                       zims: dict[str, Path]) -> None:
    add(alice, zims["full"])
    fake.engine.enqueue(["Fifty kilometres [1]."])
    r = alice.post("/v1/chat/completions", json={
        "model": "scripted", "messages": [{"role": "user", "content": ASH}],
        "cove": {"search": {"packs": True, "limit": 2}}})
    assert r.status_code == 200, r.text
    found = r.json()["cove"]["search"]
    first = found["sources"][0]
    assert (first["index"], first["kind"], first["pack"], first["title"], first["date"],
            first["url"]) == (1, "pack", "geo_en_all", "Volcano", DATE,
                              "/knowledge/geo_en_all/Volcano")
    assert found["cited"] == [1] and len(found["sources"]) == 2
    prompt = bytes(fake.engine.history[-1][0]).decode()
    assert "[1] (Volcano, 2026-11-01)" in prompt
    assert "fifty kilometres" in prompt
    r = alice.post("/v1/chat/completions", json={
        "model": "scripted", "messages": [{"role": "user", "content": ASH}],
        "cove": {"search": {"packs": ["nope"]}}})
    assert r.status_code == 404 and r.json()["error"]["param"] == "pack"


@pytest.mark.parametrize("kind", ["truncated", "not_zim", "missing"])
def test_bad_files_are_refused_and_the_server_keeps_serving(
        fake: FakeWorld, alice: Browser, zims: dict[str, Path], kind: str) -> None:
    r = add(alice, zims[kind])
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "bad_pack" and err["param"] == "file"
    assert {"truncated": "truncated", "not_zim": "not a ZIM", "missing": "no such file"}[
        kind] in err["message"]
    assert alice.get("/web/knowledge/packs").json()["packs"] == []
    assert add(alice, zims["full"]).status_code == 201  # still serving
    assert search(alice, ASH).status_code == 200


def test_a_duplicate_pack_is_a_conflict(fake: FakeWorld, alice: Browser,
                                        zims: dict[str, Path], tmp_path: Path) -> None:
    assert add(alice, zims["full"]).status_code == 201
    r = add(alice, zims["full"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_pack"
    copy = tmp_path / "copy.zim"  # the same archive (same UUID) under another name
    copy.write_bytes(zims["full"].read_bytes())
    assert add(alice, copy).json()["error"]["code"] == "duplicate_pack"
    r = add(alice, zims["titles"], name="geo_en_all")
    assert r.status_code == 409 and r.json()["error"]["param"] == "name"
    r = add(alice, zims["titles"], name="Bad Name!")
    assert r.status_code == 400 and r.json()["error"]["param"] == "name"


def test_a_pack_whose_file_broke_is_skipped(fake: FakeWorld, alice: Browser,
                                            zims: dict[str, Path], tmp_path: Path) -> None:
    moved = tmp_path / "moved.zim"
    moved.write_bytes(zims["titles"].read_bytes())
    assert add(alice, moved, name="moved").status_code == 201
    assert add(alice, zims["full"]).status_code == 201
    zim.forget(moved)
    moved.write_bytes(b"gone")
    hits = search(alice, ASH).json()["results"]
    assert hits and {h["pack"] for h in hits} == {"geo_en_all"}
    r = alice.get("/knowledge/moved/Volcano")
    assert r.status_code == 404 and "cannot be read now" in r.json()["error"]["message"]
    moved.unlink()
    listed = {p["name"]: p["available"]
              for p in alice.get("/web/knowledge/packs").json()["packs"]}
    assert listed == {"moved": False, "geo_en_all": True}


def test_without_libzim_the_error_says_how_to_install_it(
        fake: FakeWorld, alice: Browser, zims: dict[str, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("libzim", "libzim.reader", "libzim.search", "libzim.suggestion"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    assert not zim.available()
    r = add(alice, zims["full"])
    assert r.status_code == 503 and r.json()["error"]["code"] == "zim_unavailable"
    assert "pip install 'cove[zim]'" in r.json()["error"]["message"]
    assert alice.get("/web/knowledge/packs").status_code == 200


def test_the_default_install_loads_no_gpl_code(tmp_path: Path) -> None:
    code = ("import sys\nfrom cove.app import create_app\nfrom cove.config import Settings\n"
            f"create_app(Settings(home={str(tmp_path)!r}))\n"
            "import cove.features.search.packs, cove.features.search.pack_routes\n"
            "assert not [m for m in sys.modules if m.startswith('libzim')], 'libzim loaded'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def test_service_search_shape(fake: FakeWorld, zims: dict[str, Path]) -> None:
    db: Database = fake.app.state.db
    with db.session() as s:
        packs.add_pack(s, zims["full"], verify=False)
    with db.session() as s:
        hits = packs.search_packs(s, ASH, limit=3)
        assert len(hits) == 3 and hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
        with pytest.raises(Exception, match="empty"):
            packs.search_packs(s, "   ")
