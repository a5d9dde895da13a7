"""The real path for the Ollama API: `cove serve` with the bundled SmolLM2 model, driven by the
official ``ollama`` Python client; pulls come from the fake hub on loopback."""

from __future__ import annotations

import json
import time

import ollama
import pytest

from tests.conftest import HUB_REPO, LiveServer

pytestmark = pytest.mark.real_model

MODEL = "smollm2:135m"
MSG = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> ollama.Client:
    return ollama.Client(host=live_server.base_url, timeout=120)


def test_chat_not_streamed(client: ollama.Client) -> None:
    r = client.chat(model=MODEL, messages=MSG, options={"num_predict": 24, "seed": 1})
    assert r.message.role == "assistant" and r.message.content
    assert r.done and r.done_reason in ("stop", "length")
    assert r.eval_count is not None and 0 < r.eval_count <= 24
    assert r.prompt_eval_count and r.prompt_eval_count > 5


def test_chat_streamed(client: ollama.Client) -> None:
    parts = list(client.chat(model=MODEL, messages=MSG, stream=True,
                             options={"num_predict": 16}))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.message.content for p in parts)


def test_same_seed_same_answer(client: ollama.Client) -> None:
    opts = {"num_predict": 12, "seed": 7, "temperature": 0.9}
    a = client.chat(model=MODEL, messages=MSG, options=opts).message.content
    b = client.chat(model=MODEL, messages=MSG, options=opts).message.content
    assert a == b


def test_generate(client: ollama.Client) -> None:
    r = client.generate(model=MODEL, prompt="Say hello.", options={"num_predict": 10})
    assert r.response and r.done
    parts = list(client.generate(model=MODEL, prompt="Count: one, two,", raw=True, stream=True,
                                 options={"num_predict": 5, "temperature": 0}))
    assert parts[-1].done and "".join(p.response for p in parts)


def test_format_json_parses_and_stops(client: ollama.Client) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string", "maxLength": 12}},
              "required": ["colour"]}
    r = client.chat(model=MODEL, messages=[{"role": "user", "content": "Give a colour as JSON."}],
                    format=schema, options={"temperature": 0, "num_predict": 200})
    assert r.done_reason == "stop"
    assert set(json.loads(r.message.content)) == {"colour"}
    r = client.generate(model=MODEL, prompt="What is the capital of France? Answer in JSON.",
                        format="json", options={"temperature": 0, "num_predict": 100})
    assert r.done_reason == "stop"
    assert isinstance(json.loads(r.response), dict)


def test_tags_and_show(client: ollama.Client) -> None:
    names = [m.model for m in client.list().models]
    assert MODEL in names
    s = client.show(MODEL)
    assert s.details is not None and s.details.family == "llama"
    assert s.details.quantization_level == "Q4_1"
    assert s.capabilities is not None and "completion" in s.capabilities
    assert s.template and "im_start" in s.template
    assert s.modelinfo is not None and s.modelinfo["llama.context_length"] == 8192


def test_ps_and_keep_alive(client: ollama.Client) -> None:
    client.generate(model=MODEL, prompt="Hi", options={"num_predict": 2}, keep_alive="10m")
    loaded = {m.model: m for m in client.ps().models}
    assert MODEL in loaded and loaded[MODEL].size and loaded[MODEL].expires_at is not None
    r = client.generate(model=MODEL, keep_alive=0)
    assert r.done_reason == "unload"
    assert MODEL not in [m.model for m in client.ps().models]


def test_embed(client: ollama.Client) -> None:
    r = client.embed(model=MODEL, input=["The sky is blue.", "Grass is green."])
    assert len(r.embeddings) == 2 and len(r.embeddings[0]) == 576
    assert abs(sum(x * x for x in r.embeddings[0]) - 1) < 1e-3
    assert r.embeddings[0] != r.embeddings[1]


def test_pull_chat_copy_delete(client: ollama.Client) -> None:
    name = f"hf.co/{HUB_REPO}:Q4_1"
    progress = list(client.pull(name, stream=True))
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    sized = [p for p in progress if p.total]
    assert sized and sized[-1].completed == sized[-1].total
    stored = name.lower()
    assert stored in [m.model for m in client.list().models]
    r = client.chat(model=stored, messages=MSG, options={"num_predict": 8})
    assert r.message.content
    assert client.copy(stored, "mysmol").status == "success"
    assert client.delete(stored).status == "success"
    assert client.chat(model="mysmol", messages=MSG, options={"num_predict": 4}).message.content
    assert client.delete("mysmol").status == "success"
    assert "mysmol:latest" not in [m.model for m in client.list().models]


def test_create_preset(client: ollama.Client) -> None:
    r = client.create(model="brief", from_=MODEL, system="Answer in one word.",
                      parameters={"temperature": 0.2, "num_predict": 6})
    assert r.status == "success"
    s = client.show("brief")
    assert "num_predict" in (s.parameters or "")
    out = client.chat(model="brief", messages=MSG)
    assert out.eval_count is not None and out.eval_count <= 6
    client.delete("brief")


@pytest.mark.parametrize("name,status", [("nope:1b", 404), ("../../etc/passwd", 404)])
def test_errors(client: ollama.Client, name: str, status: int) -> None:
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model=name, messages=MSG)
    assert e.value.status_code == status
    with pytest.raises(ollama.ResponseError) as e:
        client.show(name)
    assert e.value.status_code == status


def test_bad_keep_alive_is_400_and_server_keeps_serving(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model=MODEL, messages=MSG, keep_alive="soon")
    assert e.value.status_code == 400
    time.sleep(0.1)
    assert client.chat(model=MODEL, messages=MSG, options={"num_predict": 2}).done
