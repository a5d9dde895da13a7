"""The real path: `cove serve` on loopback with the bundled SmolLM2 model, driven by the official
``openai`` client."""

from __future__ import annotations

import concurrent.futures as cf
import time

import httpx
import openai
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.real_model

MSG = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.base_url + "/v1", api_key="unused", max_retries=0)


def test_models_list_has_bundled_model(client: openai.OpenAI) -> None:
    assert "smollm2:135m" in [m.id for m in client.models.list()]


def test_non_streaming(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="smollm2:135m", messages=MSG, max_tokens=24)
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None and r.usage.prompt_tokens > 5
    assert 0 < r.usage.completion_tokens <= 24
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="smollm2:135m", messages=MSG, max_tokens=20, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens <= 20


def test_streaming_without_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="smollm2:135m", messages=MSG, max_tokens=5, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_max_tokens_one(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="smollm2:135m", messages=MSG, max_tokens=1)
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 1


def test_stop_sequence(client: openai.OpenAI) -> None:
    base = client.chat.completions.create(
        model="smollm2:135m", messages=MSG, max_tokens=40, temperature=0)
    text = base.choices[0].message.content or ""
    assert len(text) > 6
    stop = text[3:6]
    r = client.chat.completions.create(
        model="smollm2:135m", messages=MSG, max_tokens=40, temperature=0, stop=[stop])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == text[: text.index(stop)]


def test_same_seed_same_output(client: openai.OpenAI) -> None:
    def ask() -> str:
        r = client.chat.completions.create(
            model="smollm2:135m", messages=[{"role": "user", "content": "Tell me a story."}],
            max_tokens=40, temperature=1.0, seed=1234)
        return r.choices[0].message.content or ""

    first = ask()
    client.chat.completions.create(model="smollm2:135m", messages=MSG, max_tokens=8)
    assert ask() == first == ask()


def test_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(model="smollm2:135m", prompt="The capital of France is",
                                  max_tokens=8, temperature=0)
    assert r.choices[0].text
    assert r.usage is not None and r.usage.completion_tokens <= 8


def test_context_length_exceeded_then_works(client: openai.OpenAI) -> None:
    long = "hello " * 3000
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(
            model="smollm2:135m", messages=[{"role": "user", "content": long}], max_tokens=5)
    assert ei.value.code == "context_length_exceeded"
    assert "1024" in str(ei.value)
    with pytest.raises(openai.BadRequestError):
        list(client.chat.completions.create(
            model="smollm2:135m", messages=[{"role": "user", "content": long}], stream=True))
    r = client.chat.completions.create(model="smollm2:135m", messages=MSG, max_tokens=3)
    assert r.choices[0].message.content is not None


def test_unknown_model_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="llama9:400b", messages=MSG)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="../../etc/passwd", messages=MSG)


def test_four_concurrent_requests(client: openai.OpenAI, live_server: LiveServer) -> None:
    def one(i: int) -> str:
        try:
            r = client.chat.completions.create(
                model="smollm2:135m",
                messages=[{"role": "user", "content": f"Count to {i + 3}."}], max_tokens=16)
            return "ok" if r.choices[0].message.content is not None else "empty"
        except openai.APIStatusError as e:
            assert e.status_code == 503
            assert e.response.json()["error"]["code"] == "overloaded"
            return "busy"

    with cf.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    assert set(results) <= {"ok", "busy"} and "ok" in results
    assert live_server.proc.poll() is None
    assert httpx.get(live_server.base_url + "/health").status_code == 200


def _pending(live_server: LiveServer) -> int:
    loaded = httpx.get(live_server.base_url + "/health").json()["loaded"]
    return sum(m["pending"] for m in loaded)


def test_disconnect_cancels_generation(live_server: LiveServer) -> None:
    body = {"model": "smollm2:135m", "stream": True, "max_tokens": 900, "temperature": 1.0,
            "messages": [{"role": "user", "content": "Write a very long essay about rivers."}]}
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", live_server.base_url + "/v1/chat/completions", json=body) as r:
            lines = r.iter_lines()
            for _ in range(6):
                next(lines)
            assert _pending(live_server) == 1
        # connection closed: the generation (about 12 s of decoding left) must stop now
    deadline = time.monotonic() + 5
    while _pending(live_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pending(live_server) == 0


def test_non_streaming_disconnect_cancels_generation(live_server: LiveServer) -> None:
    body = {"model": "smollm2:135m", "max_tokens": 900, "temperature": 1.0,
            "messages": [{"role": "user", "content": "Write a very long essay about lakes."}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(live_server.base_url + "/v1/chat/completions", json=body, timeout=1.5)
    deadline = time.monotonic() + 5
    while _pending(live_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pending(live_server) == 0


def test_slow_body_gets_408_and_server_keeps_serving(live_server: LiveServer) -> None:
    import socket

    port = int(live_server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\"")
        reply = b""
        while b'"request_timeout"' not in reply:  # the status line and body may come apart
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408")
    assert b'"request_timeout"' in reply
    assert httpx.get(live_server.base_url + "/health").status_code == 200


def test_lone_surrogate_live(live_server: LiveServer) -> None:
    raw = '{"messages": [{"role": "user", "content": "\\ud800"}], "max_tokens": 1}'
    with httpx.Client(base_url=live_server.base_url, timeout=120) as c:
        r = c.post("/v1/chat/completions", content=raw,
                   headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].content"
        r = c.post("/v1/chat/completions", json={"messages": MSG, "max_tokens": 2})
        assert r.status_code == 200
