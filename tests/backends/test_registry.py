"""The backend registry and ``cove backend add/list/rm``; the affinity ring's properties."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cove.backends.registry import BackendRegistry, check_url, make_backend
from cove.backends.ring import Ring
from cove.errors import InvalidRequest


@pytest.mark.parametrize("url,why", [
    ("ftp://gpu1/v1", "http:// or https://"), ("gpu1:8000", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"), ("http:///v1", "no host"),
    ("http://user:pw@gpu1/v1", "credentials"), ("http://gpu1/v1?x=1", "query"),
    ("http://gpu1:99999/v1", "(?i)port"), ("http://gpu1:0/v1", "port 0"),
    ("http://[::1/v1", "not a URL"),  # urlsplit's ValueError was a traceback in the CLI
])
def test_a_backend_url_must_be_http_or_https(url: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=why):
        check_url(url)


def test_urls_are_normalised() -> None:
    assert check_url("http://gpu1:8000") == "http://gpu1:8000/v1"
    assert check_url("https://h.example/openai/v1/") == "https://h.example/openai/v1"


def test_pools_prefixes_and_the_file(tmp_path: Path) -> None:
    reg = BackendRegistry.load(tmp_path)
    reg.add(make_backend("a", "http://a:8000", ["llama-70b", "qwen"], weight=2))
    reg.add(make_backend("b", "http://b:8000", ["llama-70b"], prefix="gpu/",
                         max_concurrency=8, api_key_env="B_KEY"))
    reg.add(make_backend("c", "http://c:8000", ["llama-70b"]))
    with pytest.raises(InvalidRequest, match="already names"):  # one name, two upstreams
        reg.add(make_backend("d", "http://d:8000", ["gpu/llama-70b"]))
    reg.save()
    again = BackendRegistry.load(tmp_path)
    pools = again.pools()
    assert [b.name for b, _ in pools["llama-70b"]] == ["a", "c"]
    assert [(b.name, up) for b, up in pools["gpu/llama-70b"]] == [("b", "llama-70b")]
    assert again.hosts() == {"a": ["a"], "b": ["b"], "c": ["c"]}
    saved = json.loads((tmp_path / "backends.json").read_text())
    assert "B_KEY" in json.dumps(saved) and saved["backends"][1]["max_concurrency"] == 8
    (tmp_path / "backends.json").write_text("{not json")
    with pytest.raises(InvalidRequest, match="not a valid backend file"):
        BackendRegistry.load(tmp_path)


def cove(home: Path, *args: str, port: int = 9,
         columns: int = 200) -> subprocess.CompletedProcess[str]:
    env = {"COVE_HOME": str(home), "COVE_PORT": str(port), "PATH": "/usr/bin:/bin",
           "COLUMNS": str(columns),
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}  # the sources tested
    return subprocess.run([sys.executable, "-m", "cove", "backend", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_backend_commands(tmp_path: Path) -> None:
    r = cove(tmp_path, "add", "gpu1", "ftp://gpu1/v1", "--models", "big")
    assert r.returncode == 1 and "must start with http:// or https://" in r.stderr
    assert "Traceback" not in r.stderr
    r = cove(tmp_path, "add", "gpu1", "http://[::1", "--models", "big")
    assert r.returncode == 1 and "is not a URL" in r.stderr and "Traceback" not in r.stderr
    r = cove(tmp_path, "add", "w1", "http://127.0.0.1:9001", "--models", "smollm2:135m")
    assert r.returncode == 1 and "already a local model" in r.stderr and "--prefix" in r.stderr
    r = cove(tmp_path, "add", "w1", "http://127.0.0.1:9001", "--models", "smollm2:135m",
             "--prefix", "pool/", "--max-concurrency", "4")
    assert r.returncode == 0, r.stderr
    assert "pool/smollm2:135m" in r.stdout
    r = cove(tmp_path, "list")
    assert "w1" in r.stdout and "pool/smollm2:135m" in r.stdout and "no figures" in r.stdout
    assert cove(tmp_path, "rm", "w1").returncode == 0
    r = cove(tmp_path, "rm", "w1")
    assert r.returncode == 1 and "no backend named" in r.stderr
    assert "no backends" in cove(tmp_path, "list").stdout


def test_list_says_when_the_running_server_has_not_loaded_a_backend(tmp_path: Path) -> None:
    # a server that answers /metrics/backends without the backend just added (it has not
    # re-read backends.json yet): the list said "(no figures: )" before
    import http.server
    import threading

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"backends": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:9001/a/rather/long/path/v1"
        r = cove(tmp_path, "add", "w1", url, "--models", "some-long-model-name:7b")
        assert r.returncode == 0, r.stderr
        r = cove(tmp_path, "list", port=server.server_address[1], columns=100)
        assert r.returncode == 0, r.stderr
        assert "not loaded: it re-reads" in r.stdout and "(no figures: )" not in r.stdout
        # narrow terminals (and pipes: 80 columns) wrap the URL and models, never cut them
        assert "…" not in r.stdout and "http://127.0.0.1:9001" in r.stdout
    finally:
        server.shutdown()


def test_the_ring_keeps_keys_in_place_and_bounds_load() -> None:
    ring = Ring(["a", "b", "c", "d"])
    keys = [f"conversation {i}" for i in range(2000)]
    first = {k: ring.choose(k, lambda i: 0, lambda i: True) for k in keys}
    counts = [list(first.values()).count(i) for i in range(4)]
    assert min(counts) > 300  # every member gets a share
    # a member gone moves only its own keys
    moved = {k: ring.choose(k, lambda i: 0, lambda i: i != 2) for k in keys}
    assert all(moved[k] == first[k] for k in keys if first[k] != 2)
    # bounded load: with c = 1.25 no member goes above ceil(1.25 * (total + 1) / n)
    load = [0, 0, 0, 0]
    for k in keys[:400]:
        i = ring.choose(k, lambda j: load[j], lambda j: True, 1.25)
        assert i is not None
        load[i] += 1
    assert max(load) <= -(-1.25 * 401 // 4)
    heavy = Ring(["a", "b"], [3.0, 1.0])
    share = [heavy.choose(k, lambda i: 0, lambda i: True) for k in keys].count(0) / len(keys)
    assert 0.6 < share < 0.9
