"""The egress guard refuses non-loopback connections and logs them; loopback works; FastAPI's
telemetry stays off."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading

import httpx
import pytest

from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.privacy import EgressRefused, egress_allowed, install_egress_guard, refusals
from tests.conftest import FakeWorld


@pytest.fixture(autouse=True)
def guard() -> None:
    install_egress_guard()


def test_tcp_connect_to_public_address_is_refused_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="cove.privacy"):
        s = socket.socket()
        with pytest.raises(EgressRefused):
            s.connect(("1.1.1.1", 443))
        s.close()
    assert "1.1.1.1:443" in caplog.text
    assert "1.1.1.1:443" in refusals()


@pytest.mark.parametrize("host", ["10.0.0.1", "192.168.1.1", "8.8.8.8", "2001:4860::8888"])
def test_private_and_public_addresses_refused(host: str) -> None:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam)
    with pytest.raises(EgressRefused):
        s.connect_ex((host, 80))
    s.close()


def test_udp_and_dns_refused() -> None:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(EgressRefused):
        u.sendto(b"x", ("8.8.8.8", 53))
    u.close()
    with pytest.raises(EgressRefused):
        socket.getaddrinfo("example.com", 443)


def test_http_client_gets_connection_error() -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get("http://example.com/", timeout=2)


def test_loopback_still_works() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    t = threading.Thread(target=lambda: srv.accept()[0].close())
    t.start()
    c = socket.create_connection(("localhost", port), timeout=2)
    c.close()
    t.join()
    srv.close()


def test_allow_list_is_scoped() -> None:
    with egress_allowed("127.0.0.2"):
        pass  # loopback anyway; the point: the name is removed afterwards
    from cove import privacy

    assert privacy.policy()["temporarily_allowed_hosts"] == []


def test_cli_process_installs_the_guard() -> None:
    code = (
        "import socket, sys\n"
        "sys.argv=['cove','version']\n"
        "from cove.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "s=socket.socket()\n"
        "try:\n    s.connect(('93.184.216.34', 80))\n    print('CONNECTED')\n"
        "except ConnectionRefusedError as e:\n    print('REFUSED', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "REFUSED egress refused" in out.stdout, out.stdout + out.stderr


def test_fastapi_telemetry_stays_off_whatever_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FastAPI 0.142+ can trace requests and export them over OTLP when the environment asks;
    # Cove turns that off, so a collector on this very machine receives nothing either
    collector = socket.socket()
    collector.bind(("127.0.0.1", 0))
    collector.listen(8)
    collector.setblocking(False)
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT",
                       f"http://127.0.0.1:{collector.getsockname()[1]}")
    world = FakeWorld(settings, ScriptedEngine(name="scripted:latest"))
    world.engine.enqueue(["Hi"])
    try:
        with world.client:
            assert world.client.get("/health").status_code == 200
            r = world.client.post("/v1/chat/completions", json={
                "model": "scripted", "messages": [{"role": "user", "content": "hello"}]})
            assert r.status_code == 200
            assert world.client.post("/v1/chat/completions", json={}).status_code == 400
        with pytest.raises(BlockingIOError):
            collector.accept()
    finally:
        collector.close()
