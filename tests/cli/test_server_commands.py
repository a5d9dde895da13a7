"""``cove ps`` and ``cove rm`` against a running server on a non-default port, with and
without accounts (then an API key is needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.app import create_app
from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.models.registry import ModelEntry, ModelRegistry
from tests.conftest import free_port, local_client
from tests.gguf_files import make_gguf
from tests.web.browser import ThreadServer
from tests.web.helpers import Browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Any, int]]:
    """A scripted server on a free port (never the default one) with ``scripted:latest``."""
    registry = ModelRegistry()
    registry.add(ModelEntry("scripted:latest", Path("/nonexistent/s.gguf"), "scripted"))
    engine = ScriptedEngine(name="scripted:latest")
    app = create_app(Settings(home=tmp_path / "server"), registry=registry,
                     loader=lambda entry, s: engine)
    port = free_port()
    with ThreadServer(app, port):
        yield app, port


def cove(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COVE_HOME": str(tmp_path / "home"), "COVE_PORT": "9", **env}
    if "COVE_API_KEY" not in env:
        full.pop("COVE_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "cove", *args], env=full,
                          capture_output=True, text=True, timeout=120)


def test_ps_and_rm_find_the_server_on_its_port_and_use_an_api_key(
        server: tuple[Any, int], tmp_path: Path) -> None:
    app, port = server
    p = str(port)
    assert cove(tmp_path, "import", str(make_gguf(tmp_path / "s.gguf")), "scripted").returncode == 0
    client = local_client(app, base_url=f"http://127.0.0.1:{port}")
    assert client.post("/api/generate", json={"model": "scripted", "prompt": "hi",
                                              "stream": False}).status_code == 200

    r = cove(tmp_path, "ps", "--port", p)
    assert r.returncode == 0 and "scripted:latest" in r.stdout, r.stderr
    assert "in 5 minutes" in r.stdout or "in 4 minutes" in r.stdout
    assert "no Cove server" in cove(tmp_path, "ps").stdout  # COVE_PORT=9: nothing there
    r = cove(tmp_path, "ps", COVE_PORT=p)
    assert "scripted:latest" in r.stdout

    r = cove(tmp_path, "rm", "scripted", "--port", p)
    assert r.returncode == 1 and "loaded" in r.stderr

    # an account exists: the API needs a key now
    alice = Browser(local_client(app))
    assert alice.signup("alice@example.org").status_code == 200
    r = cove(tmp_path, "ps", "--port", p)
    assert r.returncode == 1
    assert "API key" in r.stderr and "no Cove server" not in r.stderr + r.stdout
    r = cove(tmp_path, "rm", "scripted", "--port", p)
    assert r.returncode == 1 and "--force" in r.stderr and "API key" in r.stderr
    assert "scripted:latest" in cove(tmp_path, "list").stdout

    key = alice.post("/web/keys", json={"name": "cli"}).json()["key"]
    r = cove(tmp_path, "ps", "--port", p, "--api-key", key)
    assert r.returncode == 0 and "scripted:latest" in r.stdout, r.stderr
    r = cove(tmp_path, "ps", "--port", p, COVE_API_KEY=key)
    assert r.returncode == 0 and "scripted:latest" in r.stdout, r.stderr
    r = cove(tmp_path, "ps", "--port", p, "--api-key", "wrong")
    assert r.returncode == 1 and "refused" in r.stderr
    r = cove(tmp_path, "rm", "scripted", "--host", "127.0.0.1", "--port", p, COVE_API_KEY=key)
    assert r.returncode == 1 and "is loaded" in r.stderr

    r = cove(tmp_path, "rm", "scripted", "--port", p, "--force")
    assert r.returncode == 0 and "deleted 'scripted:latest'" in r.stdout


def test_rm_of_a_model_the_server_has_loaded_unloads_and_removes_it(tmp_path: Path) -> None:
    """As `ollama rm`: a loaded (idle) model is removed through the server, which unloads it
    first; it used to refuse with "stop using it first", with no command to do that, and
    `--force` left the server holding a model nobody could address any more."""
    engine = ScriptedEngine(name="tiny:latest")
    app = create_app(Settings(home=tmp_path / "home"), loader=lambda entry, s: engine)
    port = free_port()
    with ThreadServer(app, port):
        p = str(port)
        assert cove(tmp_path, "import", str(make_gguf(tmp_path / "t.gguf")), "tiny").returncode == 0
        client = local_client(app, base_url=f"http://127.0.0.1:{port}")
        engine.enqueue(["hi"])
        assert client.post("/api/generate", json={"model": "tiny", "prompt": "hi", "stream": False,
                                                  "keep_alive": -1}).status_code == 200
        assert "tiny:latest" in cove(tmp_path, "ps", "--port", p).stdout

        r = cove(tmp_path, "rm", "tiny", "--port", p)
        assert r.returncode == 0 and "deleted 'tiny:latest'" in r.stdout, r.stderr
        assert client.get("/api/ps").json()["models"] == []
        assert "tiny:latest" not in cove(tmp_path, "list").stdout
        r = cove(tmp_path, "rm", "smollm2:135m", "--port", p)  # says why, not "is loaded"
        assert r.returncode == 1 and "ships with Cove" in r.stderr, r.stderr


def test_serve_on_a_port_in_use_says_so_without_a_traceback(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        r = cove(tmp_path, "serve", "--port", port)
    assert r.returncode == 1, r.stderr
    assert f"127.0.0.1:{port} is already in use" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "home" / "cove.db").exists()  # checked before anything is set up
