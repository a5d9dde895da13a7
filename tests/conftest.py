"""Shared fixtures: a scripted-engine app, and a live server on loopback with the real model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cove.app import create_app
from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.models.registry import ModelEntry, ModelRegistry


def local_client(app: Any, **kw: Any) -> TestClient:
    """A test client that calls as a browser on this machine would (``Host: localhost``)."""
    return TestClient(app, base_url=kw.pop("base_url", "http://localhost"), **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", max_queue=4, max_body_bytes=256 * 1024)


class FakeWorld:
    """A scripted engine app: ``engine`` is what every model name loads."""

    def __init__(self, settings: Settings, engine: ScriptedEngine) -> None:
        self.engine = engine
        registry = ModelRegistry()
        registry.add(ModelEntry("scripted:latest", Path("/nonexistent/scripted.gguf"), "fake"))
        registry.add(ModelEntry("thinker:latest", Path("/nonexistent/thinker.gguf"), "fake"))
        self.app = create_app(settings, registry=registry, loader=lambda entry, s: engine)
        self.client = local_client(self.app)


@pytest.fixture
def fake(settings: Settings) -> Iterator[FakeWorld]:
    world = FakeWorld(settings, ScriptedEngine(name="scripted:latest"))
    with world.client:
        yield world


class LiveServer:
    def __init__(self, base_url: str, proc: subprocess.Popen[bytes], env: dict[str, str]) -> None:
        self.base_url = base_url
        self.proc = proc
        self.env = env


HUB_REPO = "tester/SmolLM2-135M-Instruct-GGUF"
HUB_FILE = "SmolLM2-135M-Instruct-Q4_1.gguf"


def server_env(home: Path, **env_extra: str) -> dict[str, str]:
    """The environment of a test server with ``COVE_HOME=home``."""
    return {**os.environ, "COVE_HOME": str(home), "COVE_N_CTX": "1024",
            "COVE_LOG_LEVEL": "warning", **env_extra}


def start_server(home: Path, port: int, argv: list[str] | None = None,
                 **env_extra: str) -> subprocess.Popen[bytes]:
    """Start ``cove serve`` (or ``argv``) with ``COVE_HOME=home`` on ``port``; wait until
    ``/health`` answers. Output goes to ``home/server.log``."""
    env = server_env(home, **env_extra)
    log = open(home / "server.log", "ab")  # noqa: SIM115
    argv = argv or [sys.executable, "-m", "cove", "serve"]
    proc = subprocess.Popen([*argv, "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((home / "server.log").read_text())
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def hub() -> Iterator[Any]:
    """A fake Hugging Face hub on loopback serving a copy of the bundled model as
    ``hf.co/tester/SmolLM2-135M-Instruct-GGUF:Q4_1``."""
    from cove.models.registry import bundled_model_path
    from tests.fakehub import FakeHub

    h = FakeHub()
    h.add(HUB_REPO, HUB_FILE, bundled_model_path().read_bytes())
    h.start()
    yield h
    h.stop()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, hub: Any) -> Iterator[LiveServer]:
    """``cove serve`` as a subprocess on a free loopback port, with the bundled model, pulling
    from the fake hub (``HF_ENDPOINT``)."""
    port = free_port()
    home = tmp_path_factory.mktemp("cove-home")
    extra = {"COVE_REQUEST_BODY_TIMEOUT": "2", "HF_ENDPOINT": hub.url, "COVE_PORT": str(port)}
    proc = start_server(home, port, **extra)
    yield LiveServer(f"http://127.0.0.1:{port}", proc, server_env(home, **extra))
    stop_server(proc)
