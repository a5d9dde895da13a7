"""A running ``cove serve`` follows ``backends.json`` without a restart: a backend added with
``cove backend add`` is routed to, one removed with ``cove backend rm`` gets no new request
while its request in flight streams to its end, garbage written over the file keeps the
backends loaded before (with a warning in the log, no request content), and backends that
remain keep their figures. Upstreams are the scripted ones of :mod:`tests.backends.upstream`
on loopback; the client is the official ``openai`` one. Also :meth:`Router.update` itself."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from cove.backends.registry import BackendRegistry, make_backend
from cove.backends.router import Router
from cove.errors import InvalidRequest
from tests.backends.upstream import ScriptedUpstream, answer
from tests.conftest import free_port, start_server, stop_server

SECRET = "PELICAN-PROMPT-TEXT"


def wait_for(check: Callable[[], bool], seconds: float = 10) -> bool:
    """Whether ``check()`` holds within ``seconds`` (the server looks at the file at most
    once a second, on its next request)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


class Live:
    def __init__(self, home: Path, ups: list[ScriptedUpstream]) -> None:
        self.home, self.ups = home, ups
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.oai = openai.OpenAI(base_url=self.base + "/v1", api_key="unused", max_retries=0,
                                 timeout=30)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COVE_HOME": str(self.home), "COVE_PORT": str(self.port)}
        return subprocess.run([sys.executable, "-m", "cove", "backend", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    def chat(self, model: str) -> Any:
        return self.oai.chat.completions.create(model=model, max_tokens=4, messages=[
            {"role": "user", "content": f"{SECRET} hi"}])

    def answers(self, model: str) -> bool:
        try:
            return self.chat(model).choices[0].message.content == "Hello there"
        except openai.NotFoundError:
            return False

    def figures(self) -> dict[str, dict[str, Any]]:
        r = httpx.get(self.base + "/metrics/backends", timeout=10)
        return {b["name"]: b for b in r.json()["backends"]}

    def log(self) -> str:
        return (self.home / "server.log").read_text(errors="replace")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    ups = [ScriptedUpstream(["model-a"]).start(), ScriptedUpstream(["model-b"]).start()]
    home = tmp_path / "home"
    reg = BackendRegistry.load(home)
    reg.add(make_backend("b0", ups[0].url, ["model-a"]))
    reg.save()
    world = Live(home, ups)
    proc = start_server(home, world.port, COVE_LOG_LEVEL="info")
    yield world
    stop_server(proc)
    for u in ups:
        u.stop()
    assert SECRET not in world.log()


def test_a_backend_added_is_routed_to_and_one_removed_drains(live: Live) -> None:
    assert live.answers("model-a")
    with pytest.raises(openai.NotFoundError):
        live.chat("model-b")
    added = live.cli("add", "b1", live.ups[1].url, "--models", "model-b")
    assert added.returncode == 0, added.stderr
    assert "uses it from its next request" in added.stdout
    assert wait_for(lambda: live.answers("model-b"))  # no restart
    assert len(live.ups[1].bodies) >= 1
    assert live.figures()["b0"]["requests"] == 1  # b0 kept its figures through the reload
    listed = live.cli("list")
    assert listed.returncode == 0 and "no figures yet" not in listed.stdout

    # a long answer from b1 is in flight when b1 is removed: it streams to its end
    live.ups[1].plays.append({"events": answer(*(["tok "] * 30)), "delay": 0.1})
    got: list[str] = []

    def stream() -> None:
        with httpx.stream("POST", live.base + "/v1/chat/completions", timeout=30, json={
                "model": "model-b", "stream": True, "max_tokens": 40,
                "messages": [{"role": "user", "content": "long"}]}) as r:
            got.extend(r.iter_lines())

    reader = threading.Thread(target=stream)
    sent = len(live.ups[1].bodies)
    reader.start()
    assert wait_for(lambda: len(live.ups[1].bodies) > sent)
    removed = live.cli("rm", "b1")
    assert removed.returncode == 0 and "those in flight finish" in removed.stdout
    assert wait_for(lambda: live.figures().get("b1", {}).get("state") == "draining", 5)
    assert wait_for(lambda: not live.answers("model-b"))  # a 404 now: nothing serves it
    reader.join(30)
    text = "\n".join(got)
    assert text.count("tok") == 30 and "data: [DONE]" in text and '"error"' not in text
    assert len(live.ups[1].bodies) == sent + 1  # nothing new reached the removed backend
    assert wait_for(lambda: "b1" not in live.figures())  # drained
    assert live.answers("model-a")


def test_garbage_in_the_file_keeps_the_backends_loaded_before(live: Live) -> None:
    assert live.answers("model-a")
    path = live.home / "backends.json"
    good = path.read_text()
    path.write_text('{"backends": [{"name": "b0", "url": ')  # an editor's half-written save
    time.sleep(1.2)  # past the once-a-second look at the file
    assert live.answers("model-a")  # the old registry serves on
    assert wait_for(lambda: "cannot be used" in live.log(), 5)
    warning = next(x for x in live.log().splitlines() if "cannot be used" in x)
    assert "1 backends loaded before are kept" in warning and "not a valid backend" in warning
    assert SECRET not in warning
    path.write_text('{"backends": [{"name": "b0"}]}')  # valid JSON, a field missing
    time.sleep(1.2)
    assert live.answers("model-a")
    assert live.log().count("cannot be used") == 2  # once a change, not once a look
    assert "missing field 'url'" in live.log()
    # fixed: the next valid file is used, and b0 kept its figures through it all
    path.write_text(good)
    reg = BackendRegistry.load(live.home)
    reg.add(make_backend("b1", live.ups[1].url, ["model-b"], prefix="p/"))
    reg.save()
    assert wait_for(lambda: live.answers("p/model-b"))
    assert live.figures()["b0"]["requests"] == 3
    assert httpx.get(live.base + "/health", timeout=5).status_code == 200


def test_router_update_keeps_state_of_backends_that_remain(tmp_path: Path) -> None:
    reg = BackendRegistry(tmp_path / "backends.json")
    reg.add(make_backend("a", "http://127.0.0.1:9001/v1", ["m"]))
    reg.add(make_backend("b", "http://127.0.0.1:9002/v1", ["m"]))
    router = Router(reg)
    a, b = router.stats["a"], router.stats["b"]
    a.requests, a.open_until, a.failures = 5, 1e12, 3  # a's breaker is open
    b.in_flight = 1
    new = BackendRegistry(reg.path)
    new.add(make_backend("a", "http://127.0.0.1:9001/v1", ["m", "n"], weight=2))
    new.add(make_backend("c", "http://127.0.0.1:9003/v1", ["m"]))
    router.update(new)
    assert router.stats["a"] is a and a.requests == 5 and a.state == "open"
    assert a.backend.weight == 2 and router.serves("n")
    assert set(router.stats) == {"a", "c"} and b.state == "draining"
    assert [s["name"] for s in router.summaries()] == ["a", "c", "b"]  # b has one in flight
    assert [x.stats.backend.name for x in router.plan("m", None)] == ["c"]  # a is open
    router.finished(b, 0.0, ok=True)  # b's request ends: it is gone
    assert [s["name"] for s in router.summaries()] == ["a", "c"]
    moved = BackendRegistry(reg.path)
    moved.add(make_backend("a", "http://127.0.0.1:9999/v1", ["m"]))  # another server
    router.update(moved)
    assert router.stats["a"] is a and a.state == "closed" and a.requests == 5


@pytest.mark.parametrize("text", [
    "", "[]", '{"backends": [1]}', '{"backends": ["x"]}', '{"backends": {"name": "a"}}',
    '{"backends": [{"name": "a", "url": "ftp://h", "models": ["m"]}]}', "\xff\xfe"])
def test_every_bad_file_is_one_clear_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "backends.json").write_text(text, encoding="latin-1")
    with pytest.raises(InvalidRequest):
        BackendRegistry.load(tmp_path)
