"""The router and remote models against scripted upstreams on loopback: retries before the first
byte only, breaker open and recovery, errors in each API's shape, reasoning split, tool calls
and structured output passed through, usage, /metrics, the model lists, the egress policy."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove import privacy
from cove.backends.registry import BackendRegistry, make_backend
from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from tests.backends.upstream import ScriptedUpstream, answer, chunk, refused_url
from tests.conftest import FakeWorld

MODEL = "up-model"


class World:
    def __init__(self, tmp_path: Path, urls: list[str], **settings: Any) -> None:
        home = tmp_path / "home"
        reg = BackendRegistry.load(home)
        for i, url in enumerate(urls):
            reg.add(make_backend(f"b{i}", url, [MODEL]))
        reg.save()
        opts = {"backend_breaker_failures": 2, "backend_breaker_cooldown": 0.3,
                "backend_first_byte_timeout": 1.0, "backend_connect_timeout": 1.0, **settings}
        s = Settings(home=home, **opts)
        self.fake = FakeWorld(s, ScriptedEngine(name="scripted:latest"))
        self.client = self.fake.client
        self.router = self.fake.app.state.pipeline.remote.router

    def chat(self, stream: bool = False, **body: Any) -> Any:
        payload = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                   "stream": stream, **body}
        return self.client.post("/v1/chat/completions", json=payload)


@pytest.fixture
def ups() -> Iterator[list[ScriptedUpstream]]:
    servers = [ScriptedUpstream().start(), ScriptedUpstream().start()]
    yield servers
    for s in servers:
        s.stop()


def world(tmp_path: Path, urls: list[str], **kw: Any) -> World:
    return World(tmp_path, urls, **kw)


def sse_events(text: str) -> list[Any]:
    out = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


def test_a_remote_model_answers_with_usage_and_is_listed_beside_local_ones(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    w = world(tmp_path, [ups[0].url])
    with w.client:
        r = w.chat(max_tokens=5, temperature=0.2)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["choices"][0]["message"]["content"] == "Hello there"
        assert body["usage"]["prompt_tokens"] == 7 and body["usage"]["completion_tokens"] == 3
        sent = ups[0].bodies[-1]
        assert sent["model"] == MODEL and sent["stream"] is True
        assert sent["max_tokens"] == 5 and sent["temperature"] == 0.2
        assert "top_k" not in sent  # unset fields stay the backend's defaults
        ids = [m["id"] for m in w.client.get("/v1/models").json()["data"]]
        assert "scripted:latest" in ids and MODEL in ids
        assert w.client.get(f"/v1/models/{MODEL}").json()["owned_by"] == "remote"
        tags = [m["name"] for m in w.client.get("/api/tags").json()["models"]]
        assert MODEL in tags and "scripted:latest" in tags
        shown = w.client.post("/api/show", json={"model": MODEL}).json()
        assert shown["details"]["format"] == "remote" and "tools" in shown["capabilities"]
        loaded = w.client.post("/api/chat", json={"model": MODEL, "messages": []}).json()
        assert loaded["done_reason"] == "load" and len(ups[0].bodies) == 1
        picker = w.client.get("/web/models").json()["data"]
        assert {"name": MODEL, "description": "remote"} in picker


def test_ollama_and_anthropic_clients_are_served_from_the_same_upstream_stream(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    w = world(tmp_path, [ups[0].url])
    with w.client:
        r = w.client.post("/api/chat", json={"model": MODEL, "stream": False,
                                             "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200, r.text
        assert r.json()["message"]["content"] == "Hello there"
        assert r.json()["eval_count"] == 3
        lines = [json.loads(x) for x in w.client.post("/api/chat", json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).text.splitlines()]
        assert "".join(x["message"]["content"] for x in lines) == "Hello there"
        assert lines[-1]["done"] is True
        r = w.client.post("/v1/messages", json={"model": MODEL, "max_tokens": 20, "messages": [
            {"role": "user", "content": "hi"}]})
        assert r.status_code == 200, r.text
        assert r.json()["content"][0]["text"] == "Hello there"
        assert r.json()["usage"]["output_tokens"] == 3


def test_raw_think_text_is_split_into_reasoning_by_cove(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    ups[0].plays.append({"events": answer("<thi", "nk>Let me see", "</think>", "The answer")})
    ups[0].plays.append({"events": [
        chunk({"reasoning_content": "upstream split"}), *answer("ok")]})
    w = world(tmp_path, [ups[0].url])
    with w.client:
        events = sse_events(w.chat(stream=True).text)
        deltas = [e["choices"][0]["delta"] for e in events if e.get("choices")]
        reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
        content = "".join(d.get("content") or "" for d in deltas)
        assert reasoning == "Let me see" and content == "The answer"
        msg = w.chat().json()["choices"][0]["message"]
        assert msg["reasoning_content"] == "upstream split" and msg["content"] == "ok"


def test_tool_calls_and_structured_output_are_passed_through(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    calls = [chunk({"role": "assistant"}),
             chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                    "function": {"name": "get_weather", "arguments": ""}}]}),
             chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
             chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
             chunk({}, "tool_calls"), b"data: [DONE]\n\n"]
    ups[0].plays.append({"events": calls})
    ups[0].plays.append({"events": calls})
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}}, "required": ["city"]}}}]
    w = world(tmp_path, [ups[0].url])
    with w.client:
        r = w.chat(tools=tools, tool_choice="auto")
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        call = choice["message"]["tool_calls"][0]
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}
        assert ups[0].bodies[-1]["tools"] == tools
        r = w.client.post("/api/chat", json={"model": MODEL, "stream": False, "tools": tools,
                                             "messages": [{"role": "user", "content": "w?"}]})
        assert r.json()["message"]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
        w.chat(response_format={"type": "json_schema",
                                "json_schema": {"name": "x", "schema": schema}})
        assert ups[0].bodies[-1]["response_format"]["json_schema"]["schema"] == schema
        w.client.post("/api/chat", json={"model": MODEL, "stream": False, "format": "json",
                                         "messages": [{"role": "user", "content": "j"}]})
        assert ups[0].bodies[-1]["response_format"] == {"type": "json_object"}


def test_refused_and_503_backends_are_retried_before_the_first_byte(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    ups[0].plays.extend([{"status": 503}] * 3)
    w = world(tmp_path, [refused_url(), ups[0].url, ups[1].url])
    with w.client:
        for _ in range(3):
            r = w.chat()
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == "Hello there"
        stats = {s["name"]: s for s in w.client.get("/metrics/backends").json()["backends"]}
        assert stats["b2"]["requests"] >= 3  # every answer came from the healthy one
        assert stats["b0"]["errors"] + stats["b1"]["errors"] >= 3
        assert stats["b0"]["state"] in ("open", "probing")  # two failures opened it


def test_a_stream_broken_midway_ends_with_one_error_event_and_is_not_retried(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    ups[0].plays.append({"events": answer("Hel", "lo")[:3]})  # no finish, no [DONE]
    w = world(tmp_path, [ups[0].url])
    with w.client:
        r = w.chat(stream=True)
        assert r.status_code == 200
        events = sse_events(r.text)
        errors = [e for e in events if "error" in e]
        assert len(errors) == 1 and errors[0]["error"]["code"] == "bad_gateway"
        assert "broke off" in errors[0]["error"]["message"]
        assert "[DONE]" not in r.text and len(ups[0].bodies) == 1
        r = w.client.post("/api/chat", json={"model": MODEL, "messages": [
            {"role": "user", "content": "hi"}]})  # the next one is served
        assert json.loads(r.text.splitlines()[-1])["done"] is True


@pytest.mark.parametrize("play,status,code", [
    ({"raw": b"<html>oops</html>"}, 502, "bad_gateway"),
    ({"events": [b"data: {not json\n\n"]}, 502, "bad_gateway"),
    ({"hang": True}, 504, "gateway_timeout"),
    ({"status": 500}, 502, "bad_gateway"),
])
def test_garbage_and_slow_backends_are_clear_errors_in_each_api_shape(
        tmp_path: Path, ups: list[ScriptedUpstream], play: dict[str, Any], status: int,
        code: str) -> None:
    w = world(tmp_path, [ups[0].url], backend_breaker_failures=10)
    with w.client:
        for path, body in (("/v1/chat/completions", {}), ("/api/chat", {"stream": False}),
                           ("/v1/messages", {"max_tokens": 5})):
            ups[0].plays.append(play)
            r = w.client.post(path, json={"model": MODEL, "messages": [
                {"role": "user", "content": "hi"}], **body})
            want = status
            assert r.status_code == want, (path, r.text)
            err = r.json()["error"]
            if path == "/api/chat":
                assert isinstance(err, str) and "b0" in err
            elif path == "/v1/messages":
                assert err["type"] == "api_error"
            else:
                assert err["code"] == code and "b0" in err["message"]
        assert w.chat().status_code == 200  # still serving


def test_an_upstream_4xx_is_passed_on_and_does_not_count_against_the_backend(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    for up in ups:
        up.plays.append({"status": 400, "message": "prompt too long for this model"})
    w = world(tmp_path, [ups[0].url, ups[1].url])
    with w.client:
        r = w.chat()
        assert r.status_code == 400
        assert "prompt too long" in r.json()["error"]["message"]
        assert len(ups[0].bodies) + len(ups[1].bodies) == 1  # not retried elsewhere
        assert all(s["state"] == "closed" for s in w.router.summaries())


def test_the_breaker_opens_then_recovers_by_health_probe(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    ups[0].plays.extend([{"status": 503}, {"status": 503}])
    w = world(tmp_path, [ups[0].url])
    with w.client:
        assert w.chat().status_code == 503
        ups[0].down = True  # probes fail while it is "starting"
        r = w.chat()
        assert r.status_code == 503 and r.json()["error"]["code"] == "backend_unavailable"
        assert "Retry-After" in r.headers
        r = w.client.post("/api/chat", json={"model": MODEL, "stream": False, "messages": [
            {"role": "user", "content": "hi"}]})
        assert r.status_code == 503 and "circuit breaker" in r.json()["error"]
        sent = len(ups[0].bodies)
        time.sleep(0.8)
        assert w.router.stats["b0"].state != "closed"  # probed and still down
        ups[0].down = False
        deadline = time.monotonic() + 5
        while w.router.stats["b0"].state != "closed" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert w.router.stats["b0"].state == "closed"
        assert len(ups[0].bodies) == sent  # no request was sent while it was open
        assert w.chat().status_code == 200
        metrics = w.client.get("/metrics").text
        assert 'cove_backend_up{backend="b0"} 1.0' in metrics
        assert 'cove_backend_breaker_opened_total{backend="b0"} 1.0' in metrics


def test_a_client_that_leaves_cancels_the_upstream_request(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    ups[0].plays.append({"events": answer(*(["tok "] * 200)), "delay": 0.02})
    w = world(tmp_path, [ups[0].url])
    with w.client:
        with w.client.stream("POST", "/v1/chat/completions", json={
                "model": MODEL, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}) as r:
            for line in r.iter_lines():
                if "tok" in line:
                    break
        deadline = time.monotonic() + 5
        while ups[0].gone == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ups[0].gone == 1
        assert w.router.stats["b0"].in_flight == 0


def test_a_model_served_nowhere_is_a_404_and_a_full_pool_a_503(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    w = world(tmp_path, [ups[0].url])
    with w.client:
        r = w.client.post("/v1/chat/completions", json={
            "model": "nowhere", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
        w.router.stats["b0"].in_flight = 10**6  # over any bound
        object.__setattr__(w.router.stats["b0"].backend, "max_concurrency", 1)
        r = w.chat()
        assert r.status_code == 503 and "concurrency limit" in r.json()["error"]["message"]


def test_affinity_sends_a_conversation_to_one_backend_and_spreads_others(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    w = world(tmp_path, [ups[0].url, ups[1].url])
    with w.client:
        for turn in range(4):
            msgs = [{"role": "user", "content": "first question of conversation A"}]
            msgs += [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}] \
                * turn
            assert w.chat(messages=msgs).status_code == 200
        assert sorted([len(ups[0].bodies), len(ups[1].bodies)]) == [0, 4]
        for i in range(12):
            w.chat(messages=[{"role": "user", "content": f"conversation {i}"}])
        assert len(ups[0].bodies) > 0 and len(ups[1].bodies) > 0
        n0 = len(ups[0].bodies)
        for _ in range(3):  # prompt_cache_key routes by the client's own key
            w.chat(prompt_cache_key="session-42")
        assert len(ups[0].bodies) - n0 in (0, 3)


def test_the_egress_guard_names_each_backend_host(tmp_path: Path) -> None:
    home = tmp_path / "home"
    reg = BackendRegistry.load(home)
    reg.add(make_backend("gpu1", "http://gpu1.example:8000/v1", ["big"]))
    reg.add(make_backend("gpu2", "https://10.9.9.9:9000", ["big"]))
    reg.save()
    FakeWorld(Settings(home=home), ScriptedEngine())
    policy = privacy.policy()
    assert policy["backend_hosts"]["gpu1.example"] == ["gpu1"]
    assert policy["backend_hosts"]["10.9.9.9"] == ["gpu2"]
    assert privacy._allowed("gpu1.example") and not privacy._allowed("other.example")


def test_metrics_need_an_api_key_once_an_account_exists(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    w = world(tmp_path, [ups[0].url])
    with w.client:
        assert w.chat().status_code == 200
        text = w.client.get("/metrics").text
        assert 'cove_backend_requests_total{backend="b0"} 1.0' in text
        assert 'cove_backend_tokens_total{backend="b0",kind="completion"} 3.0' in text
        assert "# TYPE cove_backend_request_seconds summary" in text
        w.fake.engine.enqueue([b"local"])
        assert w.chat(model="scripted:latest").status_code == 200  # the local engine's figures
        text = w.client.get("/metrics").text
        assert 'cove_model_slots{kind="chat",model="scripted:latest"} 4.0' in text
        assert 'cove_model_pending{kind="chat",model="scripted:latest"} 0.0' in text
        assert 'cove_prompt_cache_bytes{kind="chat",model="scripted:latest"} 0.0' in text
        assert "cove_prompt_cache_budget_bytes{" in text
        assert w.client.post("/web/signup", json={"email": "a@example.org",
                                                  "password": "correct horse battery"}
                             ).status_code == 200
        w.client.cookies.clear()
        r = w.client.get("/metrics")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert w.client.get("/metrics/backends").status_code == 401


def test_a_web_conversation_on_a_remote_model_is_stored_and_stays_on_one_backend(
        tmp_path: Path, ups: list[ScriptedUpstream]) -> None:
    from tests.web.helpers import Browser, events, text_of

    w = world(tmp_path, [ups[0].url, ups[1].url])
    with w.client:
        alice = Browser(w.client)
        assert alice.signup("alice@example.org").status_code == 200
        cid = alice.post("/web/conversations", json={"model": MODEL}).json()["id"]
        for i in range(3):
            r = alice.post(f"/web/conversations/{cid}/messages", json={"content": f"q{i}"})
            assert text_of(events(r.text)) == "Hello there"
        assert sorted([len(ups[0].bodies), len(ups[1].bodies)]) == [0, 3]
        msgs = alice.get(f"/web/conversations/{cid}").json()["messages"]
        assert [m["content"] for m in msgs] == ["q0", "Hello there", "q1", "Hello there", "q2",
                                                "Hello there"]
        assert msgs[1]["model"] == MODEL and msgs[1]["completion_tokens"] == 3
