"""``cove knowledge add-pack|list-packs|rm-pack`` as an operator runs them: metadata listed,
bad files and duplicates refused with exit status 1 and a one-line message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.features.search.zims import DATE, make_zim, truncated

COVE = [sys.executable, "-m", "cove"]


def cove(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COVE_HOME": str(home)}
    return subprocess.run([*COVE, "knowledge", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_add_list_remove_and_bad_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    full = make_zim(tmp_path / "geo.zim")
    titles = make_zim(tmp_path / "t.zim", fulltext=False, name="geo_titles", title="Titles")
    r = cove(home, "add-pack", str(full))
    assert r.returncode == 0, r.stderr
    assert "added pack 'geo_en_all': Tiny Geology (eng, 2026-11-01, 4 articles" in r.stdout
    r = cove(home, "add-pack", str(titles), "--name", "titles")
    assert r.returncode == 0 and "no full-text index" in r.stdout

    r = cove(home, "list-packs")
    assert r.returncode == 0
    assert f"geo_en_all  Tiny Geology  [eng]  {DATE}  4 articles" in r.stdout
    assert "titles  Titles  [eng]" in r.stdout and "(titles only)" in r.stdout
    rows = json.loads(cove(home, "list-packs", "--json").stdout)
    assert [(p["name"], p["path"]) for p in rows] == [("geo_en_all", str(full.resolve())),
                                                      ("titles", str(titles.resolve()))]

    r = cove(home, "add-pack", str(full))
    assert r.returncode == 1 and "already registered as pack 'geo_en_all'" in r.stderr
    (tmp_path / "notes.txt").write_text("hello")
    bad = {"not a ZIM archive": tmp_path / "notes.txt",
           "truncated": truncated(full, tmp_path / "half.zim"),
           "no such file": tmp_path / "missing.zim"}
    for message, path in bad.items():
        r = cove(home, "add-pack", str(path))
        assert r.returncode == 1 and message in r.stderr, (message, r.stderr)
        assert "Traceback" not in r.stderr

    r = cove(home, "rm-pack", "titles")
    assert r.returncode == 0 and titles.exists()
    r = cove(home, "rm-pack", "titles")
    assert r.returncode == 1 and "no knowledge pack 'titles'" in r.stderr
    assert [p["name"] for p in json.loads(cove(home, "list-packs", "--json").stdout)] == [
        "geo_en_all"]


def test_run_search_answers_from_the_packs(tmp_path: Path) -> None:
    # packs need no account, and `cove run --search` offers them as the web app's switch does
    home = tmp_path / "home"
    assert cove(home, "add-pack", str(make_zim(tmp_path / "geo.zim"))).returncode == 0
    env = {**os.environ, "COVE_HOME": str(home)}
    r = subprocess.run([*COVE, "run", "--search", "--max-tokens", "1", "--temperature", "0",
                        "Where is the lava lake of Erta Ale?"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    sources = r.stdout.split("Sources:", 1)[1]
    assert "Volcano" in sources and "Erta Ale" in sources
