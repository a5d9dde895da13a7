"""A chat makes no non-loopback connection — neither through the CLI nor through the server (API
and web app) — and `cove privacy` reports the inventory.

Each process runs with a Python audit hook (``sys.addaudithook``) that records every socket
connect, datagram and name lookup that reaches the C socket layer; the egress guard's refusals
are logged as ``egress refused``. Passing means: nothing non-local went out, and nothing was even
attempted.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, start_server, stop_server
from tests.web.helpers import PASSWORD

HOOK = """
import json, os, sys
_log = open(os.environ["COVE_AUDIT_LOG"], "a")
def _hook(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind"):
        _log.write(json.dumps([event, repr(args[1])]) + "\\n"); _log.flush()
    elif event == "socket.getaddrinfo":
        _log.write(json.dumps([event, repr(args[0])]) + "\\n"); _log.flush()
sys.addaudithook(_hook)
sys.argv = ["cove", *sys.argv[1:]]
from cove.cli.main import main
main()
"""


def launcher(tmp_path: Path) -> list[str]:
    script = tmp_path / "audited_cove.py"
    script.write_text(HOOK)
    return [sys.executable, str(script)]


def is_local(addr: str) -> bool:
    value: Any = eval(addr, {})  # repr of a str/bytes/tuple written by the hook
    if isinstance(value, (str, bytes)):
        host = value.decode() if isinstance(value, bytes) else value
        if host.startswith("/") or host.startswith("\0") or host in ("localhost", ""):
            return True  # unix socket path or a local name
    else:
        host = str(value[0])
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host == "localhost"
    return ip.is_loopback or ip.is_unspecified


def audited(log: Path) -> list[tuple[str, str]]:
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()]  # type: ignore[misc]


@pytest.mark.real_model
def test_cli_chat_makes_no_outbound_connection(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.touch()
    env = {"COVE_HOME": str(tmp_path / "home"), "COVE_AUDIT_LOG": str(log), "PATH": "/usr/bin"}
    r = subprocess.run([*launcher(tmp_path), "run", "Say hi.", "--max-tokens", "8"],
                       capture_output=True, text=True, timeout=180,
                       env={**__import__("os").environ, **env})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert "egress refused" not in r.stderr
    assert [e for e in audited(log) if not is_local(e[1])] == []


@pytest.mark.real_model
def test_server_chats_make_no_outbound_connection(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.touch()
    port = free_port()
    proc = start_server(tmp_path, port, launcher(tmp_path) + ["serve"],
                        COVE_AUDIT_LOG=str(log))
    base = f"http://127.0.0.1:{port}"
    try:
        r = httpx.post(base + "/v1/chat/completions", timeout=120, json={
            "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8})
        assert r.status_code == 200
        r = httpx.post(base + "/web/guest/chat", timeout=120, json={
            "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8})
        assert '"type": "done"' in r.text
        c = httpx.Client(base_url=base, timeout=120)
        csrf = c.post("/web/signup", json={"email": "e@example.org", "password": PASSWORD}
                      ).json()["csrf"]
        cid = c.post("/web/conversations", json={}, headers={"X-CSRF-Token": csrf}).json()["id"]
        r = c.post(f"/web/conversations/{cid}/messages", headers={"X-CSRF-Token": csrf},
                   json={"content": "Say hi.", "max_tokens": 8})
        assert '"type": "done"' in r.text
        c.get("/")
    finally:
        stop_server(proc)
    server_log = (tmp_path / "server.log").read_text()
    assert "egress refused" not in server_log
    events = audited(log)
    assert any(e[0] == "socket.bind" for e in events)  # the hook does see the socket layer
    assert [e for e in events if not is_local(e[1])] == []


def test_an_attempt_inside_the_server_is_refused_and_logged(tmp_path: Path) -> None:
    code = (
        "import logging, socket\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "from cove.app import create_app\nfrom cove.config import Settings\n"
        f"create_app(Settings(home={str(tmp_path)!r}))\n"
        "try:\n    socket.create_connection(('203.0.113.7', 443), timeout=2)\n"
        "    print('CONNECTED')\n"
        "except ConnectionRefusedError as e:\n    print('REFUSED', e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "REFUSED egress refused" in r.stdout, r.stdout + r.stderr
    assert "egress refused" in r.stderr and "203.0.113.7" in r.stderr


def test_privacy_inventory(tmp_path: Path) -> None:
    env = {**__import__("os").environ, "COVE_HOME": str(tmp_path), "COVE_RETENTION_DAYS": "30"}
    r = subprocess.run([sys.executable, "-m", "cove", "privacy"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    for text in ["Where data lives", str(tmp_path), "Stored per user", "argon2id",
                 "Egress policy", "loopback and unix sockets only", "127.0.0.1:11435",
                 "no telemetry", "retention_days: 30", "no database yet"]:
        assert text in r.stdout, text
    # with a database: row counts, file sizes; the database URL never shows a password
    from cove.config import Settings
    from cove.store.db import open_database

    open_database(Settings(home=tmp_path)).close()
    r = subprocess.run([sys.executable, "-m", "cove", "privacy", "--json"], capture_output=True,
                       text=True, timeout=60, env={**env, "COVE_HOST": "0.0.0.0"})
    inv = json.loads(r.stdout)
    assert inv["data"]["rows"] == {"users": 0, "api_keys": 0, "conversations": 0, "messages": 0,
                                 "message_images": 0, "responses": 0, "search_collections": 0,
                                 "search_documents": 0, "search_chunks": 0, "search_files": 0,
                                 "meme_templates": 0, "memes": 0, "idea_boards": 0,
                                 "arena_battles": 0}
    assert inv["data"]["database_files"][0]["bytes"] > 0
    assert inv["listening"] == {"address": "0.0.0.0:11435", "loopback_only": False,
                                "api_without_key": "never", "guest_chat": False}
    assert inv["egress"]["guard_installed"] is True
    r = subprocess.run([sys.executable, "-m", "cove", "privacy", "--json"], capture_output=True,
                       text=True, timeout=60, env={
                           **env, "COVE_DATABASE_URL": "postgresql://cove:hunter2@localhost/x"})
    assert "hunter2" not in r.stdout
