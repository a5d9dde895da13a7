"""Two ``cove serve`` processes on one PostgreSQL database (as behind a load balancer), with the
bundled model: migrations applied once while both start together, sessions and API keys valid
on either, interleaved chats in one conversation, sign-in limits counted across processes
(with the device cookie honoured by both), and a process starting while another streams does
not mark that answer interrupted, but one killed while another runs leaves its answer to be
marked interrupted."""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests import pg
from tests.conftest import free_port, start_server, stop_server
from tests.web.helpers import PASSWORD, Browser, events, text_of

pytestmark = [pytest.mark.real_model,
              pytest.mark.skipif(not pg.available(), reason="PostgreSQL server not installed")]

ENV = {"COVE_N_THREADS": "1", "COVE_N_PARALLEL": "2", "COVE_PROMPT_CACHE_MB": "32",
       "COVE_SIGNIN_FAILURES": "3", "COVE_SIGNIN_BACKOFF": "60"}


def _start(root: Path, name: str, url: str) -> tuple[Any, str]:
    home = root / name
    home.mkdir(exist_ok=True)
    port = free_port()
    return start_server(home, port, COVE_DATABASE_URL=url, **ENV), f"http://127.0.0.1:{port}"


@pytest.fixture
def two(pg_url: str, tmp_path: Path) -> Iterator[tuple[list[str], str, Path, list[Any]]]:
    with pg.fresh_database(pg_url) as url:
        with cf.ThreadPoolExecutor(2) as pool:  # both migrate at the same moment
            started = list(pool.map(lambda n: _start(tmp_path, n, url), ["a", "b"]))
        try:
            yield [base for _, base in started], url, tmp_path, [p for p, _ in started]
        finally:
            for proc, _ in started:
                stop_server(proc)


def browser(base: str, cookies: httpx.Cookies | None = None, csrf: str = "") -> Browser:
    b = Browser(httpx.Client(base_url=base, timeout=120, cookies=cookies))  # type: ignore[arg-type]
    b.csrf = csrf
    return b


def _head() -> str:
    """The newest migration's revision."""
    from alembic.script import ScriptDirectory

    from cove.store.db import MIGRATIONS

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def test_two_processes_share_sessions_keys_limits_and_conversations(
        two: tuple[list[str], str, Path, list[Any]]) -> None:
    (a_url, b_url), url, root, (a_proc, _) = two
    engine = create_engine(url)
    with engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() \
            == _head()
    a = browser(a_url)
    assert a.signup("alice@example.org").status_code == 200
    b = browser(b_url, a.client.cookies, a.csrf)  # the same browser, sent to the other process
    assert b.get("/web/session").json()["user"]["email"] == "alice@example.org"
    key = b.post("/web/keys", json={"name": "script"}).json()["key"]
    for base in (a_url, b_url):
        r = httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
        assert httpx.get(f"{base}/v1/models").status_code == 401
    cid = a.post("/web/conversations", json={}).json()["id"]
    for i, who in enumerate([b, a, b]):
        r = who.post(f"/web/conversations/{cid}/messages",
                     json={"content": f"Message {i}: say a word.", "max_tokens": 4})
        assert r.status_code == 200 and text_of(events(r.text)) is not None
    msgs = a.get(f"/web/conversations/{cid}").json()["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 3
    assert [m["content"] for m in msgs[::2]] == [f"Message {i}: say a word." for i in range(3)]
    assert all(m["status"] == "complete" for m in msgs)

    # failed sign-ins count across processes: 3 free failures (and the one that earns the
    # first wait) in all, then both refuse
    device = a.client.cookies.get("cove_device")
    login = {"email": "alice@example.org", "password": "wrong password!"}
    for base in (a_url, b_url, a_url, b_url):
        assert httpx.post(f"{base}/web/login", json=login).status_code == 401
    for base in (b_url, a_url):
        r = httpx.post(f"{base}/web/login", json=login)
        assert r.status_code == 429 and "Retry-After" in r.headers
    # ... but the browser that signed in before is not held up, on either process
    assert device
    r = httpx.post(f"{b_url}/web/login", json={**login, "password": PASSWORD},
                   cookies={"cove_device": device})
    assert r.status_code == 200, r.text

    # a process starting while another streams leaves that answer alone
    with httpx.stream("POST", f"{a_url}/web/conversations/{cid}/messages",
                      headers={"X-CSRF-Token": a.csrf}, cookies=a.client.cookies,
                      json={"content": "Write a long story.", "max_tokens": 300},
                      timeout=180) as r:
        lines = r.iter_lines()
        for line in lines:
            if '"delta"' in line:
                break
        proc, _ = _start(root, "c", url)
        try:
            with engine.connect() as c:
                status = c.execute(text("SELECT status FROM messages ORDER BY id DESC "
                                        "LIMIT 1")).scalar()
            assert status == "streaming"
        finally:
            stop_server(proc)
        for _ in lines:
            pass
    time.sleep(0.2)
    with engine.connect() as c:
        assert c.execute(text("SELECT status FROM messages ORDER BY id DESC LIMIT 1")).scalar() \
            == "complete"

    # a process killed mid-answer while another runs: the next start marks that answer
    # interrupted (the survivor's own sweep, every 30 s, would too), its partial text kept
    with httpx.stream("POST", f"{a_url}/web/conversations/{cid}/messages",
                      headers={"X-CSRF-Token": a.csrf}, cookies=a.client.cookies,
                      json={"content": "Write a long story.", "max_tokens": 300},
                      timeout=180) as r:
        for line in r.iter_lines():
            if '"delta"' in line:
                break
        a_proc.kill()
        a_proc.wait()
    proc, _ = _start(root, "d", url)
    try:
        with engine.connect() as c:
            status, content = c.execute(text("SELECT status, content FROM messages "
                                             "ORDER BY id DESC LIMIT 1")).one()
        assert status == "interrupted" and content
        assert b.get(f"/web/conversations/{cid}").json()["messages"][-1]["status"] \
            == "interrupted"
    finally:
        stop_server(proc)
    engine.dispose()
