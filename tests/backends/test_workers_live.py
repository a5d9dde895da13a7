"""A Cove router in front of real workers on loopback: two ``cove serve`` workers (the bundled
model, one thread each) and one ``python -m llama_cpp.server`` (llama-cpp-python's own server),
all serving ``smollm2:135m`` as the pool ``pool/smollm2:135m`` of a third ``cove serve``.

Checked: ``/v1/models`` is the union; the official OpenAI and Ollama clients on the remote
model; requests spread over the workers while a conversation stays on one; a client that
leaves stops the worker's generation; a worker killed mid-run fails no request that had not yet
received its first byte, its breaker opens, and it recovers once the worker is back.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cove.backends.registry import BackendRegistry, make_backend
from cove.models.registry import bundled_model_path
from tests.conftest import free_port, start_server, stop_server

pytestmark = pytest.mark.real_model

POOL = "pool/smollm2:135m"
WORKER_ENV = {"COVE_N_THREADS": "1", "COVE_N_PARALLEL": "2", "COVE_PROMPT_CACHE_MB": "64"}


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {"w1": free_port(), "w2": free_port(), "llama": free_port()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for name in ("w1", "w2"):
            self.start_worker(name)
        self.procs["llama"] = self._start_llama()
        home = root / "router"
        home.mkdir()
        reg = BackendRegistry.load(home)
        for name, port in self.ports.items():
            reg.add(make_backend(name, f"http://127.0.0.1:{port}/v1", ["smollm2:135m"],
                                 prefix="pool/"))
        reg.save()
        self.port = free_port()
        self.router = start_server(home, self.port, COVE_BACKEND_BREAKER_FAILURES="2",
                                   COVE_BACKEND_BREAKER_COOLDOWN="1",
                                   COVE_BACKEND_FIRST_BYTE_TIMEOUT="120")
        self.url = f"http://127.0.0.1:{self.port}"

    def start_worker(self, name: str) -> None:
        home = self.root / name
        home.mkdir(exist_ok=True)
        self.procs[name] = start_server(home, self.ports[name], **WORKER_ENV)

    def _start_llama(self) -> subprocess.Popen[bytes]:
        port = self.ports["llama"]
        log = open(self.root / "llama.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_model_path()),
             "--model_alias", "smollm2:135m", "--n_threads", "1", "--n_threads_batch", "1",
             "--n_ctx", "1024", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError((self.root / "llama.log").read_text())
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    return proc
            except httpx.HTTPError:
                time.sleep(0.3)
        proc.kill()
        raise RuntimeError("llama_cpp.server did not start")

    def stats(self) -> dict[str, dict[str, Any]]:
        r = httpx.get(f"{self.url}/metrics/backends", timeout=10)
        return {b["name"]: b for b in r.json()["backends"]}

    def stop(self) -> None:
        for proc in [self.router, *self.procs.values()]:
            if proc.poll() is None:
                stop_server(proc)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield c
    finally:
        c.stop()


def chat(c: Cluster, content: str, *, history: list[dict[str, str]] | None = None,
         max_tokens: int = 8) -> httpx.Response:
    msgs = [*(history or []), {"role": "user", "content": content}]
    return httpx.post(f"{c.url}/v1/chat/completions", timeout=120, json={
        "model": POOL, "messages": msgs, "max_tokens": max_tokens, "temperature": 0})


def test_models_are_the_union_and_the_official_clients_work_on_a_remote_model(
        cluster: Cluster) -> None:
    import ollama
    import openai

    ids = [m["id"] for m in httpx.get(f"{cluster.url}/v1/models", timeout=60).json()["data"]]
    assert "smollm2:135m" in ids and POOL in ids
    client = openai.OpenAI(base_url=f"{cluster.url}/v1", api_key="unused", timeout=180)
    text = ""
    usage = None
    for ev in client.chat.completions.create(
            model=POOL, stream=True, max_tokens=12, temperature=0,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "Name a colour."}]):
        if ev.choices:
            text += ev.choices[0].delta.content or ""
        if ev.usage:
            usage = ev.usage
    assert text.strip() and usage is not None and usage.completion_tokens > 0
    o = ollama.Client(host=cluster.url, timeout=180)
    assert POOL in [m.model for m in o.list().models]
    r = o.chat(model=POOL, messages=[{"role": "user", "content": "Say hi."}],
               options={"num_predict": 8, "temperature": 0})
    assert r.message.content and r.eval_count and r.eval_count > 0
    parts = [p.message.content for p in o.chat(
        model=POOL, stream=True, options={"num_predict": 8},
        messages=[{"role": "user", "content": "Count to three."}])]
    assert "".join(parts).strip()


def test_requests_spread_and_a_conversation_stays_on_its_backend(cluster: Cluster) -> None:
    before = cluster.stats()
    history: list[dict[str, str]] = []
    for turn in range(3):
        question = f"Turn {turn} of one conversation about boats."
        r = chat(cluster, question, history=history)
        assert r.status_code == 200, r.text
        history += [{"role": "user", "content": question},
                    {"role": "assistant", "content": r.json()["choices"][0]["message"]
                     ["content"]}]
    mid = cluster.stats()
    used = [n for n in mid if mid[n]["requests"] > before[n]["requests"]]
    assert len(used) == 1, (before, mid)  # the three turns went to one backend
    for i in range(8):
        assert chat(cluster, f"Question number {i}: what is {i} plus one?").status_code == 200
    after = cluster.stats()
    spread = [n for n in after if after[n]["requests"] > mid[n]["requests"]]
    assert len(spread) >= 2, after


def test_a_client_that_leaves_stops_the_workers_generation(cluster: Cluster) -> None:
    body = {"model": POOL, "stream": True, "max_tokens": 400, "temperature": 0.8,
            "messages": [{"role": "user", "content": "Write a long story about a cove."}],
            "prompt_cache_key": "cancel-test"}
    with httpx.stream("POST", f"{cluster.url}/v1/chat/completions", json=body,
                      timeout=120) as r:
        got = 0
        for line in r.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                got += 1
                if got >= 3:
                    break
    # the upstream's request is closed: every backend is idle again long before 400 tokens
    deadline = time.monotonic() + 10
    busy: list[Any] = []
    while time.monotonic() < deadline:
        busy = [s for s in cluster.stats().values() if s["in_flight"]]
        pending = [m["pending"] for w in ("w1", "w2") for m in httpx.get(
            f"http://127.0.0.1:{cluster.ports[w]}/health").json()["loaded"]]
        if not busy and not any(pending):
            break
        time.sleep(0.2)
    assert not busy and not any(pending)


def _streamed(c: Cluster, i: int) -> tuple[bool, bool]:
    """``(received a first byte, ended in error)`` of one streamed request."""
    first = False
    body = {"model": POOL, "stream": True, "max_tokens": 48, "temperature": 0.7,
            "messages": [{"role": "user", "content": f"Tell me fact {i} about the sea."}]}
    try:
        with httpx.stream("POST", f"{c.url}/v1/chat/completions", json=body,
                          timeout=180) as r:
            if r.status_code != 200:
                return first, True
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                first = True
                if line == "data: [DONE]":
                    return first, False
                if "error" in json.loads(line[6:]):
                    return first, True
    except httpx.HTTPError:
        return first, True
    return first, True


def test_a_worker_killed_mid_run_fails_no_request_before_its_first_byte(
        cluster: Cluster) -> None:
    with cf.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(_streamed, cluster, i) for i in range(6)]
        time.sleep(1.5)
        cluster.procs["w1"].kill()
        cluster.procs["w1"].wait()
        more = [pool.submit(_streamed, cluster, 100 + i) for i in range(4)]
        results = [f.result() for f in futures + more]
    failed_before_first_byte = [r for r in results if r[1] and not r[0]]
    assert not failed_before_first_byte, results
    assert sum(1 for r in results if not r[1]) >= len(results) - 2  # at most w1's own two
    deadline = time.monotonic() + 10
    while cluster.stats()["w1"]["state"] == "closed" and time.monotonic() < deadline:
        chat(cluster, "Ping?", max_tokens=2)  # failures reach the breaker
    assert cluster.stats()["w1"]["state"] in ("open", "probing")
    sent = cluster.stats()["w1"]["requests"]
    for i in range(4):
        assert chat(cluster, f"While w1 is down, question {i}.", max_tokens=2).status_code == 200
    assert cluster.stats()["w1"]["requests"] == sent  # nothing goes to an open breaker
    cluster.start_worker("w1")
    deadline = time.monotonic() + 20
    while cluster.stats()["w1"]["state"] != "closed" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert cluster.stats()["w1"]["state"] == "closed"  # recovered by its health probe
    metrics = httpx.get(f"{cluster.url}/metrics").text
    assert 'cove_backend_breaker_opened_total{backend="w1"}' in metrics
