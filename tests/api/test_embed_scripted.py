"""Embeddings routes over a scripted embedder: ``/v1/embeddings`` (OpenAI's shapes, base64,
token ids, dimensions, errors), ``/api/embed`` options (Ollama's), limits, a client that goes
away between batches, and embedding requests that must not hold chat back."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cove.app import create_app
from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.models.registry import ModelEntry, ModelRegistry
from tests.api.test_disconnect_scripted import gone_client
from tests.api.test_openai_scripted import assert_error
from tests.conftest import local_client
from tests.fake_embedder import ScriptedEmbedder


class World:
    def __init__(self, settings: Settings) -> None:
        self.engine = ScriptedEngine(name="scripted:latest")
        self.embedder = ScriptedEmbedder(n_ctx=64, n_seq_max=4)
        self.embed_loads: list[int] = []
        registry = ModelRegistry()
        registry.add(ModelEntry("scripted:latest", Path("/nonexistent/s.gguf"), "fake"))

        def embed_loader(entry: ModelEntry, s: Settings) -> ScriptedEmbedder:
            self.embed_loads.append(s.n_ctx)
            self.embedder.closed = False  # the same scripted model, loaded again
            return self.embedder

        self.app = create_app(settings, registry=registry, loader=lambda e, s: self.engine,
                              embed_loader=embed_loader)
        self.client = local_client(self.app)

    def v1(self, **body: Any) -> Any:
        body.setdefault("model", "scripted")
        return self.client.post("/v1/embeddings", json=body)

    def api(self, **body: Any) -> Any:
        body.setdefault("model", "scripted")
        return self.client.post("/api/embed", json=body)

    def loaded(self) -> list[Any]:
        return list(self.app.state.pipeline.models.loaded())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = Settings(home=tmp_path / "home", n_batch=16, max_queue=16,
                        embed_max_inputs=50, embed_max_tokens=500)
    w = World(settings)
    with w.client:
        yield w


def ollama_error(resp: Any, status: int, contains: str = "") -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    assert contains.lower() in body["error"].lower()
    return str(body["error"])


def test_v1_shapes_for_a_string_and_a_list(world: World) -> None:
    one = world.v1(input="hello").json()
    assert one["object"] == "list" and one["model"] == "scripted:latest"
    assert one["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    (item,) = one["data"]
    assert item["object"] == "embedding" and item["index"] == 0
    assert len(item["embedding"]) == 6 and np.isclose(np.linalg.norm(item["embedding"]), 1)
    many = world.v1(input=["hello", "a", "world!"], user="someone").json()
    assert [d["index"] for d in many["data"]] == [0, 1, 2]
    assert many["data"][0]["embedding"] == item["embedding"]
    assert many["usage"]["prompt_tokens"] == 12


def test_v1_token_ids_one_list_or_many(world: World) -> None:
    one = world.v1(input=[104, 105]).json()
    assert one["usage"]["prompt_tokens"] == 2 and len(one["data"]) == 1
    assert world.embedder.batches[-1] == [[104, 105]]
    many = world.v1(input=[[104, 105], [7]]).json()
    assert len(many["data"]) == 2 and world.embedder.batches[-1] == [[104, 105], [7]]
    assert many["data"][0]["embedding"] == world.v1(input="hi").json()["data"][0]["embedding"]
    assert_error(world.v1(input=[1, 5000]), 400, param="input")
    assert_error(world.v1(input=[[1], [2, 5000]]), 400, param="input[1]")


def test_v1_base64_is_little_endian_float32(world: World) -> None:
    floats = world.v1(input=["hello", "hi"]).json()["data"]
    packed = world.v1(input=["hello", "hi"], encoding_format="base64").json()["data"]
    for f, p in zip(floats, packed, strict=True):
        decoded = np.frombuffer(base64.b64decode(p["embedding"]), dtype="<f4")
        assert decoded.tolist() == f["embedding"]


def test_v1_dimensions_cut_and_renormalise(world: World) -> None:
    full = world.v1(input="hello").json()["data"][0]["embedding"]
    cut = world.v1(input="hello", dimensions=3).json()["data"][0]["embedding"]
    assert len(cut) == 3 and np.allclose(cut, np.array(full[:3]) / np.linalg.norm(full[:3]))
    err = assert_error(world.v1(input="hello", dimensions=7), 400, param="dimensions")
    assert "6" in err["message"]
    assert_error(world.v1(input="hello", dimensions=0), 400, param="dimensions")


@pytest.mark.parametrize("body,param", [
    ({"input": ""}, "input"),
    ({"input": []}, "input"),
    ({"input": ["a", ""]}, "input[1]"),
    ({"input": ["a", 1]}, "input[1]"),
    ({"input": {"text": "a"}}, "input"),
    ({"input": 123}, "input"),
    ({"input": [[1, "x"]]}, "input[0][1]"),
    ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
    ({"input": "a", "dimensions": True}, "dimensions"),
    ({}, "input"),
])
def test_v1_bad_requests_are_openai_400s(world: World, body: dict[str, Any],
                                         param: str | None) -> None:
    assert_error(world.v1(**body), 400, param=param)


def test_v1_limits_name_the_setting(world: World) -> None:
    err = assert_error(world.v1(input=["a"] * 51), 400, param="input", code="too_many_inputs")
    assert "50" in err["message"] and "COVE_EMBED_MAX_INPUTS" in err["message"]
    err = assert_error(world.v1(input=["x" * 60] * 9), 400, code="too_many_tokens")
    assert "500" in err["message"] and "COVE_EMBED_MAX_TOKENS" in err["message"]
    err = assert_error(world.v1(input=["x" * 65]), 400, param="input",
                       code="context_length_exceeded")  # never cut on /v1, as at OpenAI
    assert "64" in err["message"]
    assert world.embedder.batches == []


def test_v1_unknown_model_is_404(world: World) -> None:
    assert_error(world.v1(model="nope", input="a"), 404, code="model_not_found")


def test_api_embed_truncate_and_its_refusal(world: World) -> None:
    body = world.api(input=["ab", "x" * 100]).json()
    assert len(body["embeddings"]) == 2 and body["prompt_eval_count"] == 2 + 64
    assert body["total_duration"] >= body["load_duration"] >= 0
    ollama_error(world.api(input=["ab", "x" * 100], truncate=False), 400, "input[1]")


def test_api_embed_dimensions_options_and_keep_alive(world: World) -> None:
    full = world.api(input="hello").json()["embeddings"][0]
    cut = world.api(input="hello", dimensions=2).json()["embeddings"][0]
    assert np.allclose(cut, np.array(full[:2]) / np.linalg.norm(full[:2]))
    assert world.api(input="hello", dimensions=99).json()["embeddings"][0] == full
    world.api(input="hello", options={"num_ctx": 512})
    assert world.embed_loads[-1] == 512
    ollama_error(world.api(input="a", options={"num_ctx": "big"}), 400)
    ollama_error(world.api(input="a", keep_alive="soon"), 400, "keep_alive")
    assert world.api(input="hello", keep_alive=0).status_code == 200
    # unloaded by the manager's reaper as soon as it is idle (after the answer, as in Ollama)
    deadline = time.monotonic() + 30
    while world.loaded() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert world.loaded() == []


def test_api_embed_empty_input_loads_the_model(world: World) -> None:
    for empty in ("", []):
        body = world.api(input=empty).json()
        assert body["embeddings"] == [] and body["prompt_eval_count"] == 0
    assert [m.kind for m in world.loaded()] == ["embed"] and world.embedder.batches == []
    ollama_error(world.api(input=["a", ""]), 400, "input[1]")
    ollama_error(world.api(input=["a"] * 51), 400, "COVE_EMBED_MAX_INPUTS")


def test_api_embeddings_legacy(world: World) -> None:
    legacy = world.client.post("/api/embeddings", json={"model": "scripted", "prompt": "hi"})
    assert legacy.json()["embedding"] == world.api(input="hi").json()["embeddings"][0]
    empty = world.client.post("/api/embeddings", json={"model": "scripted", "prompt": ""})
    assert empty.json() == {"embedding": []}


@pytest.mark.parametrize("path,body", [
    ("/v1/embeddings", {"model": "scripted", "input": ["abcdefgh"] * 12}),
    ("/api/embed", {"model": "scripted", "input": ["abcdefgh"] * 12}),
])
def test_a_client_gone_after_the_first_batch_stops_the_rest(world: World, path: str,
                                                            body: dict[str, Any]) -> None:
    world.client.post("/api/embed", json={"model": "scripted"})  # load it
    world.embedder.delay = 0.05
    portal = world.client.portal
    assert portal is not None
    portal.call(gone_client, world.app, path, body, lambda: bool(world.embedder.batches))
    assert len(world.embedder.batches) == 1  # of six
    (loaded,) = world.loaded()
    assert not loaded.busy


def test_embed_requests_do_not_hold_chat_back(world: World) -> None:
    """More embed requests than the event loop has worker threads, all waiting behind one
    stuck batch: chat still answers (they wait on the embedder's turn, not in threads)."""
    world.client.post("/api/embed", json={"model": "scripted"})
    world.embedder.gate = threading.Event()
    with cf.ThreadPoolExecutor(16) as pool:
        embeds = [pool.submit(world.v1, input=[f"text {i}"]) for i in range(12)]
        assert world.embedder.started.wait(10)
        world.engine.enqueue(["still", " here"])
        chat = pool.submit(world.client.post, "/v1/chat/completions", json={
            "model": "scripted", "messages": [{"role": "user", "content": "hi"}]})
        reply = chat.result(timeout=60)
        assert reply.json()["choices"][0]["message"]["content"] == "still here"
        assert not any(e.done() for e in embeds)
        world.embedder.gate.set()
        assert all(e.result(timeout=20).status_code == 200 for e in embeds)


def test_more_waiting_embeds_than_the_queue_is_503(tmp_path: Path) -> None:
    w = World(Settings(home=tmp_path / "home", max_queue=1))
    with w.client:
        w.client.post("/api/embed", json={"model": "scripted"})
        w.embedder.gate = threading.Event()
        with cf.ThreadPoolExecutor(3) as pool:
            first = [pool.submit(w.v1, input="a"), pool.submit(w.v1, input="b")]
            assert w.embedder.started.wait(10)
            turns = w.app.state.pipeline.embeddings._turns
            deadline = time.monotonic() + 60
            while (not any(t.requests >= 2 for t in turns.values())
                   and time.monotonic() < deadline):
                time.sleep(0.05)  # until the second request waits its turn
            resp = w.v1(input="c")
            assert_error(resp, 503, code="overloaded")
            assert resp.headers["Retry-After"]
            w.embedder.gate.set()
            assert [f.result(timeout=20).status_code for f in first] == [200, 200]


def test_embeddings_need_an_api_key_once_an_account_exists(world: World) -> None:
    from tests.web.helpers import Browser

    assert world.v1(input="a").status_code == 200
    b = Browser(local_client(world.app))
    b.signup("owner@example.org")
    assert_error(world.v1(input="a"), 401, code="invalid_api_key")
    ollama_error(world.api(input="a"), 401)
    key = b.post("/web/keys", json={"name": "cli"}).json()["key"]
    auth = {"Authorization": f"Bearer {key}"}
    resp = world.client.post("/v1/embeddings", json={"model": "scripted", "input": "a"},
                             headers=auth)
    assert resp.status_code == 200
