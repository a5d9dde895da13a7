"""``cove knowledge add|list|search`` and ``cove privacy`` counts, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cove.auth.repo import create_user
from cove.config import Settings
from cove.features.search.store import Chunk, Document
from cove.store.db import open_database
from tests.features.search.files import make_pdf

COVE = [sys.executable, "-m", "cove"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    db = open_database(Settings(home=home))
    with db.session() as s:
        create_user(s, "owner@example.org", "correct horse battery")
        create_user(s, "other@example.org", "correct horse battery")
    db.close()
    return home


def cove(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COVE_HOME": str(home)}
    return subprocess.run([*COVE, *args], capture_output=True, text=True, env=env, timeout=120)


def documents(home: Path) -> tuple[int, int]:
    db = open_database(Settings(home=home))
    try:
        with db.session() as s:
            return (int(s.scalar(select(func.count()).select_from(Document)) or 0),
                    int(s.scalar(select(func.count()).select_from(Chunk)) or 0))
    finally:
        db.close()


def test_add_folder_list_search_and_privacy(home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "birds.md").write_text("# Birds\n\nHerons wait patiently by rivers.\n")
    (docs / "trip.pdf").write_bytes(make_pdf(["The train to Oslo leaves at nine."]))
    (docs / "broken.pdf").write_bytes(b"not a pdf")
    (docs / ".hidden.md").write_text("secret")
    (docs / "image.png").write_bytes(b"\x89PNG")
    r = cove(home, "knowledge", "add", "travel", str(docs))
    assert r.returncode == 0, r.stderr
    assert "2 added, 1 skipped" in r.stderr and "is named .pdf but is not a PDF" in r.stderr
    assert documents(home)[0] == 2

    # adding the folder again adds only what is new or changed, never a passage twice
    chunks = documents(home)[1]
    (docs / "sub" / "fish.md").write_text("# Fish\n\nSalmon swim upstream.\n")
    again = cove(home, "knowledge", "add", "travel", str(docs))
    assert again.returncode == 0, again.stderr
    said = " ".join(again.stderr.split())
    assert "1 added, 2 unchanged, 1 skipped" in said and "already in 'travel'" in said
    assert documents(home)[0] == 3 and documents(home)[1] > chunks
    (docs / "sub" / "fish.md").unlink()

    listed = cove(home, "knowledge", "list")
    assert listed.returncode == 0 and "travel  (3 documents)" in listed.stdout
    assert "trip.pdf  (pdf" in listed.stdout and "birds.md" in listed.stdout
    found = cove(home, "knowledge", "search", "travel", "when does the train leave?")
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("[1] trip.pdf, page 1") and "Oslo" in found.stdout

    other = cove(home, "knowledge", "list", "--user", "other@example.org")
    assert other.returncode == 0 and other.stdout == ""
    missing = cove(home, "knowledge", "search", "travel", "train", "--user", "other@example.org")
    assert missing.returncode != 0 and "no collection 'travel'" in missing.stderr

    rows = json.loads(cove(home, "privacy", "--json").stdout)["data"]["rows"]
    assert rows["search_collections"] == 1 and rows["search_documents"] == 3
    assert rows["search_chunks"] == documents(home)[1] >= 2


def test_ctrl_c_stops_cleanly_keeping_whole_documents(home: Path, tmp_path: Path) -> None:
    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(300):
        (docs / f"note{i:03}.md").write_text(f"# Note {i}\n\n" + "Words of the note. " * 400)
    env = {**os.environ, "COVE_HOME": str(home), "COLUMNS": "200"}
    p = subprocess.Popen([*COVE, "knowledge", "add", "notes", str(docs)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        lines.append(line)
        if line.startswith("added") and len([x for x in lines if x.startswith("added")]) >= 3:
            break
    p.send_signal(signal.SIGINT)
    _, rest = p.communicate(timeout=60)
    assert p.returncode == 130, rest
    assert "cancelled:" in rest and "the file in progress was not kept" in rest
    n_docs, n_chunks = documents(home)
    assert 3 <= n_docs < 300
    db = open_database(Settings(home=home))
    with db.session() as s:  # every document kept is whole
        per_doc = s.execute(select(Chunk.document_id, func.count()).group_by(Chunk.document_id))
        assert {c for _, c in per_doc} == {n_chunks // n_docs}
    db.close()


def test_without_an_account_says_how_to_make_one(tmp_path: Path) -> None:
    r = cove(tmp_path / "empty", "knowledge", "add", "notes", str(tmp_path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    said = " ".join(r.stderr.split())
    assert "cove serve" in said and "sign up" in said
    r = cove(tmp_path / "empty", "run", "--search", "hello")
    assert r.returncode == 1 and "sign up" in " ".join(r.stderr.split())
