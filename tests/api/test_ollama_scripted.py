"""Ollama API over a scripted engine and a real store in a temporary home: NDJSON framing,
thinking, format, options, keep_alive, model operations, CORS and every error shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.app import create_app
from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.models.registry import ModelEntry, ModelRegistry
from cove.models.store import ModelStore
from tests.conftest import local_client
from tests.fake_embedder import ScriptedEmbedder
from tests.gguf_files import THINK_TEMPLATE, make_gguf


class World:
    def __init__(self, settings: Settings) -> None:
        self.engine = ScriptedEngine(name="scripted:latest")
        self.thinker = ScriptedEngine(name="thinker:latest", chat_template=THINK_TEMPLATE)
        self.registry = ModelRegistry(ModelStore(settings.home / "models"))
        self.registry.add(ModelEntry("scripted:latest", Path("/nonexistent/s.gguf"), "fake"))
        self.registry.add(ModelEntry("thinker:latest", Path("/nonexistent/t.gguf"), "fake"))
        self.loads: list[tuple[str, int]] = []

        def loader(entry: ModelEntry, s: Settings) -> ScriptedEngine:
            self.loads.append((entry.name, s.n_ctx))
            return self.thinker if entry.name.startswith("thinker") else self.engine

        self.app = create_app(settings, registry=self.registry, loader=loader,
                              embed_loader=lambda e, s: ScriptedEmbedder())
        self.client = local_client(self.app)


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    w = World(settings)
    with w.client:
        yield w


def lines(resp: Any) -> list[dict[str, Any]]:
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    assert resp.text.endswith("\n")
    return [json.loads(line) for line in resp.text.splitlines()]


def assert_error(resp: Any, status: int, contains: str = "") -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert contains.lower() in body["error"].lower()
    return str(body["error"])


def chat(w: World, **body: Any) -> Any:
    body.setdefault("model", "scripted")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return w.client.post("/api/chat", json=body)


def test_chat_streams_ndjson_by_default(world: World) -> None:
    world.engine.enqueue(["Hel", "lo"])
    out = lines(chat(world))
    assert [o["done"] for o in out] == [False, False, True]
    assert "".join(o["message"]["content"] for o in out) == "Hello"
    last = out[-1]
    assert last["done_reason"] == "stop" and last["eval_count"] == 2
    assert last["prompt_eval_count"] > 0 and last["total_duration"] > 0
    assert all(o["model"] == "scripted:latest" and o["created_at"].endswith("Z") for o in out)


def test_chat_not_streamed(world: World) -> None:
    world.engine.enqueue(["a", "b"])
    body = chat(world, stream=False, options={"num_predict": 1}).json()
    assert body["message"] == {"role": "assistant", "content": "a"}
    assert body["done"] is True and body["done_reason"] == "length"


def test_thinking_goes_to_message_thinking(world: World) -> None:
    world.thinker.enqueue(["plan", " it</think>", "answer"])
    out = lines(chat(world, model="thinker", think=True))
    thinking = "".join(o["message"].get("thinking", "") for o in out)
    content = "".join(o["message"]["content"] for o in out)
    assert (thinking, content) == ("plan it", "answer")
    assert all(not (o["message"].get("thinking") and o["message"]["content"]) for o in out)
    world.thinker.enqueue(["plan</think>", "answer"])
    body = chat(world, model="thinker", stream=False).json()
    assert body["message"]["thinking"] == "plan" and body["message"]["content"] == "answer"


def test_think_false_drops_reasoning_and_asks_template(world: World) -> None:
    world.thinker.enqueue(["plan</think>", "answer"])
    body = chat(world, model="thinker", stream=False, think=False).json()
    assert body["message"] == {"role": "assistant", "content": "answer"}


def test_think_on_a_model_that_cannot(world: World) -> None:
    assert_error(chat(world, think=True), 400, "does not support thinking")


def test_generate(world: World) -> None:
    world.engine.enqueue(["fox"])
    out = lines(world.client.post("/api/generate", json={
        "model": "scripted", "prompt": "The quick", "system": "Be brief."}))
    assert "".join(o["response"] for o in out) == "fox" and out[-1]["done"]
    prompt = bytes(world.engine.history[-1][0]).decode()
    assert "Be brief." in prompt and "The quick" in prompt and "<|im_start|>" in prompt
    world.engine.enqueue(["jumps"])
    body = world.client.post("/api/generate", json={
        "model": "scripted", "prompt": "RAW", "raw": True, "stream": False}).json()
    assert body["response"] == "jumps" and bytes(world.engine.history[-1][0]).decode() == "RAW"


def test_options_map_to_sampling(world: World) -> None:
    world.engine.enqueue(["x"])
    chat(world, stream=False, options={"temperature": 0.1, "top_p": 0.5, "top_k": 7,
                                       "seed": 42, "num_predict": 9, "stop": ["###"],
                                       "min_p": 0.2, "repeat_penalty": 1.3, "mirostat": 2})
    params = world.engine.history[-1][1]
    assert (params.temperature, params.top_p, params.top_k, params.seed, params.max_tokens,
            params.stop, params.min_p, params.repeat_penalty) == (
        0.1, 0.5, 7, 42, 9, ("###",), 0.2, 1.3)


def test_num_ctx_reloads_the_model(world: World) -> None:
    world.engine.enqueue(["x"])
    chat(world, stream=False)
    world.engine.enqueue(["y"])
    chat(world, stream=False, options={"num_ctx": 1024})
    assert world.loads[-1] == ("scripted:latest", 1024)
    assert world.client.get("/api/ps").json()["models"][0]["context_length"] == 1024


def test_format_json_and_schema_become_a_grammar(world: World) -> None:
    world.engine.enqueue(["{}"])
    chat(world, stream=False, format="json")
    assert "object" in (world.engine.history[-1][1].grammar or "")
    world.engine.enqueue(["{}"])
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    chat(world, stream=False, format=schema)
    assert "age" in (world.engine.history[-1][1].grammar or "")
    assert_error(chat(world, format="yaml"), 400, "format")


@pytest.mark.parametrize("value", ["5m", 30, -1, "-1", "0", 0, "1h30m"])
def test_keep_alive_accepted(world: World, value: Any) -> None:
    world.engine.enqueue(["x"])
    assert chat(world, stream=False, keep_alive=value).status_code == 200


@pytest.mark.parametrize("value", ["soon", "", "5 minutes", True, [1], {"a": 1}])
def test_keep_alive_garbage_is_400(world: World, value: Any) -> None:
    assert_error(chat(world, keep_alive=value), 400, "keep_alive")


def test_keep_alive_zero_unloads_and_forever_stays(world: World) -> None:
    world.engine.enqueue(["x"])
    chat(world, stream=False, keep_alive=-1)
    ps = world.client.get("/api/ps").json()["models"]
    assert ps[0]["name"] == "scripted:latest" and ps[0]["expires_at"].startswith("2318")
    body = world.client.post("/api/generate", json={"model": "scripted", "keep_alive": 0})
    assert body.json()["done_reason"] == "unload"
    assert world.client.get("/api/ps").json()["models"] == []
    body = world.client.post("/api/chat", json={"model": "scripted"}).json()
    assert body["done_reason"] == "load"
    assert [m["name"] for m in world.client.get("/api/ps").json()["models"]] == [
        "scripted:latest"]


def test_tags_show_copy_delete_create(world: World, tmp_path: Path) -> None:
    from cove.models.manage import import_gguf

    import_gguf(world.registry, make_gguf(tmp_path / "t.gguf", template=THINK_TEMPLATE), "tiny")
    names = [m["name"] for m in world.client.get("/api/tags").json()["models"]]
    assert "tiny:latest" in names and "scripted:latest" in names
    tiny = next(m for m in world.client.get("/api/tags").json()["models"]
                if m["name"] == "tiny:latest")
    assert tiny["details"]["family"] == "llama" and len(tiny["digest"]) == 64
    show = world.client.post("/api/show", json={"model": "tiny"}).json()
    assert "thinking" in show["capabilities"] and show["template"] == THINK_TEMPLATE
    assert show["model_info"]["general.architecture"] == "llama"
    assert world.client.post("/api/copy", json={"source": "tiny",
                                                "destination": "tiny2:x"}).status_code == 200
    resp = world.client.post("/api/create", json={
        "model": "brief", "from": "tiny2:x", "system": "Be brief.",
        "parameters": {"temperature": 0.3}, "stream": False})
    assert resp.json() == {"status": "success"}
    show = world.client.post("/api/show", json={"model": "brief"}).json()
    assert show["system"] == "Be brief." and "temperature" in show["parameters"]
    assert world.client.request("DELETE", "/api/delete",
                                json={"model": "tiny"}).status_code == 200
    assert world.client.request("DELETE", "/api/delete",
                                json={"model": "tiny2:x"}).status_code == 200
    # the preset still works: it shares the weights blob
    assert world.client.post("/api/show", json={"model": "brief"}).status_code == 200
    assert_error(world.client.request("DELETE", "/api/delete", json={"model": "tiny"}), 404)


def test_preset_defaults_apply_unless_overridden(world: World) -> None:
    world.client.post("/api/create", json={"model": "pirate", "from": "scripted",
                                           "system": "Talk like a pirate.",
                                           "parameters": {"temperature": 0.1, "top_k": 3},
                                           "stream": False})
    world.engine.enqueue(["arr"])
    chat(world, model="pirate", stream=False, options={"top_k": 9})
    prompt, params = world.engine.history[-1]
    assert "Talk like a pirate." in bytes(prompt).decode()
    assert (params.temperature, params.top_k) == (0.1, 9)
    world.engine.enqueue(["arr"])
    world.client.post("/v1/chat/completions", json={
        "model": "pirate", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.9})
    assert world.engine.history[-1][1].temperature == 0.9
    assert world.engine.history[-1][1].top_k == 3


def test_create_stream_and_pull_bad_name(world: World) -> None:
    out = lines(world.client.post("/api/create", json={"model": "p2", "from": "scripted"}))
    assert out[-1] == {"status": "success"}
    assert_error(world.client.post("/api/pull", json={"model": "../../etc/passwd"}), 404)


def test_embed(world: World) -> None:
    body = world.client.post("/api/embed", json={"model": "scripted",
                                                 "input": ["a", "bbb"]}).json()
    assert len(body["embeddings"]) == 2 and body["prompt_eval_count"] == 4
    assert abs(sum(x * x for x in body["embeddings"][0]) - 1) < 1e-6
    single = world.client.post("/api/embed", json={"model": "scripted", "input": "a"}).json()
    assert single["embeddings"] == body["embeddings"][:1]
    legacy = world.client.post("/api/embeddings", json={"model": "scripted", "prompt": "a"})
    assert legacy.json()["embedding"] == body["embeddings"][0]
    empty = world.client.post("/api/embed", json={"model": "scripted", "input": []}).json()
    assert empty["embeddings"] == [] and empty["prompt_eval_count"] == 0


def test_version(world: World) -> None:
    assert world.client.get("/api/version").json()["version"]


def test_cors_preflight(world: World) -> None:
    ok = world.client.options("/api/chat", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
    bad = world.client.options("/api/chat", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in bad.headers


def test_cors_extra_origins(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, origins="https://*.example.org")
    client = local_client(create_app(settings, registry=ModelRegistry()))
    ok = client.options("/api/tags", headers={
        "Origin": "https://app.example.org", "Access-Control-Request-Method": "GET"})
    assert ok.headers["access-control-allow-origin"] == "https://app.example.org"


# -- errors on every route ------------------------------------------------------------------

BAD_NAMES = ["../../etc/passwd", "/etc/passwd", "a\\b", "~/x", "x\x00y", "a:b:c",
             "hf.co/../x", "hf.co/a/b/c/d"]
ROUTES = [
    ("POST", "/api/chat", lambda n: {"model": n, "messages": [{"role": "user", "content": "x"}]}),
    ("POST", "/api/generate", lambda n: {"model": n, "prompt": "x"}),
    ("POST", "/api/show", lambda n: {"model": n}),
    ("DELETE", "/api/delete", lambda n: {"model": n}),
    ("POST", "/api/copy", lambda n: {"source": n, "destination": "ok"}),
    ("POST", "/api/copy", lambda n: {"source": "scripted", "destination": n}),
    ("POST", "/api/pull", lambda n: {"model": n}),
    ("POST", "/api/create", lambda n: {"model": n, "from": "scripted"}),
    ("POST", "/api/create", lambda n: {"model": "ok", "from": n}),
    ("POST", "/api/embed", lambda n: {"model": n, "input": "x"}),
]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("method,path,body", ROUTES)
def test_bad_names_on_every_route(world: World, tmp_path: Path, method: str, path: str,
                                  body: Any, name: str) -> None:
    home = world.app.state.settings.home
    before = sorted(p for p in tmp_path.rglob("*"))
    resp = world.client.request(method, path, json=body(name))
    assert resp.status_code in (400, 404), resp.text
    assert_error(resp, resp.status_code)
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not (home / "models" / "manifests").exists() or not any(
        p.suffix == ".json" for p in (home / "models" / "manifests").rglob("*"))


@pytest.mark.parametrize("method,path,body,status", [
    ("POST", "/api/chat", {"model": "nope", "messages": [{"role": "user", "content": "x"}]},
     404),
    ("POST", "/api/chat", {"messages": [{"role": "user", "content": "x"}]}, 400),
    ("POST", "/api/chat", {"model": "scripted", "messages": [{"role": "x", "content": "y"}]},
     400),
    ("POST", "/api/chat", {"model": "scripted", "messages": "no"}, 400),
    ("POST", "/api/chat", {"model": "scripted", "messages": [{"role": "user", "content": "x"}],
                           "options": {"temperature": "hot"}}, 400),
    ("POST", "/api/chat", {"model": "scripted", "messages": [{"role": "user", "content": "x"}],
                           "options": {"num_ctx": 1}}, 400),
    ("POST", "/api/generate", {"model": "scripted", "prompt": "x", "suffix": "y"}, 400),
    ("POST", "/api/show", {"model": "nope"}, 404),
    ("POST", "/api/show", {}, 400),
    ("DELETE", "/api/delete", {"model": "smollm2:135m"}, 400),
    ("POST", "/api/copy", {"source": "nope", "destination": "x"}, 404),
    ("POST", "/api/create", {"model": "x", "from": "nope"}, 404),
    ("POST", "/api/create", {"model": "x", "modelfile": "FROM y"}, 400),
    ("POST", "/api/create", {"model": "x", "from": "scripted", "quantize": "q4_K_M"}, 400),
    ("POST", "/api/pull", {"model": "not-curated:1b", "stream": False}, 404),
    ("GET", "/api/nothing", None, 404),
    ("GET", "/api/chat", None, 405),
    ("DELETE", "/api/tags", None, 405),
    ("GET", "/api/delete", None, 405),
    # booleans are strict: neither strings nor numbers
    ("POST", "/api/chat", {"model": "scripted", "messages": [], "stream": "yes"}, 400),
    ("POST", "/api/chat", {"model": "scripted", "messages": [], "stream": 0}, 400),
    ("POST", "/api/chat", {"model": "scripted", "messages": [], "think": 1}, 400),
    ("POST", "/api/generate", {"model": "scripted", "prompt": "x", "raw": "true"}, 400),
    ("POST", "/api/show", {"model": "scripted", "verbose": "yes"}, 400),
    ("POST", "/api/embed", {"model": "scripted", "input": "x", "truncate": 0}, 400),
    ("POST", "/api/pull", {"model": "x", "stream": "no"}, 400),
    ("POST", "/api/pull", {"model": "x", "insecure": 1}, 400),
    ("POST", "/api/create", {"model": "x", "from": "scripted", "stream": 1}, 400),
])
def test_error_shapes(world: World, method: str, path: str, body: Any, status: int) -> None:
    resp = world.client.request(method, path, json=body)
    message = assert_error(resp, status)
    if status == 405:
        assert resp.headers["allow"] and resp.headers["allow"] in message
    if body and status == 400 and any(isinstance(v, str | int) and not isinstance(v, bool)
                                      and k in ("stream", "think", "raw", "verbose",
                                                "truncate", "insecure") for k, v in body.items()):
        assert "expected true or false" in message


@pytest.mark.parametrize("path,body", [
    ("/api/create", {"model": "../x", "from": "scripted", "stream": False}),
    ("/api/copy", {"source": "scripted", "destination": "a:b:c"}),
])
def test_a_bad_new_name_is_a_400_saying_it_is_invalid(world: World, path: str,
                                                     body: dict[str, Any]) -> None:
    resp = world.client.post(path, json=body)
    assert_error(resp, 400, "is not a valid model name")


def test_create_refuses_an_unknown_parameter_name(world: World) -> None:
    resp = world.client.post("/api/create", json={"model": "p", "from": "scripted",
                                                  "parameters": {"temprature": 0.1}})
    assert_error(resp, 400, "unknown parameter 'temprature'")


def test_malformed_json_and_big_body(world: World) -> None:
    resp = world.client.post("/api/chat", content=b"{oops",
                             headers={"content-type": "application/json"})
    assert_error(resp, 400, "json")
    big = "x" * (300 * 1024)
    assert_error(chat(world, messages=[{"role": "user", "content": big}]), 413)


def test_failure_mid_stream_ends_with_error_line(world: World) -> None:
    world.engine.enqueue(["part", RuntimeError("boom /secret/path")])
    out = lines(chat(world))
    assert set(out[-1]) == {"error"} and [o for o in out if "error" in o] == [out[-1]]
    assert "/secret/path" not in out[-1]["error"] and "reference" in out[-1]["error"]
    world.engine.enqueue(["fine"])
    assert chat(world, stream=False).json()["message"]["content"] == "fine"


def test_server_errors_show_only_a_reference(world: World) -> None:
    world.engine.enqueue([RuntimeError("boom /secret/path")])
    message = assert_error(chat(world, stream=False), 500, "reference")
    assert "/secret/path" not in message and "RuntimeError" not in message
    world.engine.enqueue([RuntimeError("boom /secret/path")])
    resp = world.client.post("/api/generate", json={"model": "scripted", "prompt": "x"})
    assert "/secret/path" not in resp.text and "reference" in lines(resp)[-1]["error"]


def test_ps_lists_a_model_once_when_loaded_for_chat_and_embeddings(world: World) -> None:
    assert chat(world, stream=False).status_code == 200
    assert world.client.post("/api/embed", json={"model": "scripted",
                                                 "input": "a"}).status_code == 200
    models = world.client.get("/api/ps").json()["models"]
    assert [m["name"] for m in models] == ["scripted:latest"]
    assert models[0]["kind"] == "chat,embed"
