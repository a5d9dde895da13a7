"""The real path for uploads and capabilities: ``cove serve`` with the bundled SmolLM2, the
official ``ollama`` client uploading GGUFs made from it (``create_blob``, then ``create`` with
``files``) and chatting with them; ``HEAD`` probes and ``GET /`` as clients send them."""

from __future__ import annotations

import base64
import os
import socket
import time
from pathlib import Path

import httpx
import ollama
import pytest

from cove.models.registry import bundled_model_path
from tests.conftest import LiveServer
from tests.gguf_files import rewrite_gguf

pytestmark = pytest.mark.real_model

MODEL = "smollm2:135m"
MSG = [{"role": "user", "content": "Name three colours."}]
# SmolLM2's ChatML with the reasoning opened in the prompt (as R1-style templates do)
THINKING_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)
TOOL = {"type": "function", "function": {"name": "paint", "description": "paint a wall",
                                         "parameters": {"type": "object", "properties": {
                                             "colour": {"type": "string"}},
                                             "required": ["colour"]}}}
IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> ollama.Client:
    return ollama.Client(host=live_server.base_url, timeout=120)


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SmolLM2 as a reasoning model (a ``<think>`` template) and as an embedding-only model
    (``llama.pooling_type`` set: mean), same weights."""
    d = tmp_path_factory.mktemp("ggufs")
    src = bundled_model_path()
    return {"thinker": rewrite_gguf(src, d / "smol-thinker.gguf", template=THINKING_CHATML),
            "embedder": rewrite_gguf(src, d / "smol-embed.gguf",
                                     ints={"llama.pooling_type": 1})}


def _blobs(live_server: LiveServer) -> Path:
    return Path(live_server.env["COVE_HOME"]) / "models" / "blobs"


def test_create_blob_then_create_with_files_then_chat(client: ollama.Client,
                                                      live_server: LiveServer,
                                                      ggufs: dict[str, Path]) -> None:
    path = ggufs["thinker"]
    assert path.stat().st_size > 8 * 1024 * 1024  # bigger than COVE_MAX_BODY_BYTES
    digest = client.create_blob(path)
    assert (_blobs(live_server) / digest.replace(":", "-")).stat().st_size == path.stat().st_size
    assert httpx.head(f"{live_server.base_url}/api/blobs/{digest}").status_code == 200
    assert client.create_blob(path) == digest  # a second upload is a no-op (200)
    progress = list(client.create(model="smol-thinker", files={path.name: digest},
                                  parameters={"num_predict": 24, "temperature": 0},
                                  stream=True))
    assert progress[-1].status == "success"
    assert f"using existing layer {digest}" in [p.status for p in progress]
    assert "smol-thinker:latest" in [m.model for m in client.list().models]
    shown = client.show("smol-thinker")
    assert shown.capabilities == ["completion", "tools", "thinking"]
    assert "num_predict" in (shown.parameters or "")
    r = client.chat(model="smol-thinker", messages=MSG, think=True)
    # the template opens <think>, so what the model writes is reasoning, split off
    assert r.message.thinking and "colours" in r.message.thinking
    assert r.eval_count is not None and r.eval_count <= 24  # the preset's num_predict
    client.delete("smol-thinker")


def test_each_capability_advertised_is_served_and_each_missing_refused(
        client: ollama.Client, ggufs: dict[str, Path]) -> None:
    path = ggufs["embedder"]
    client.create(model="smol-embed", files={path.name: client.create_blob(path)})
    served = {MODEL: ["completion", "tools"], "smol-embed:latest": ["embedding"]}
    for model, expected in served.items():
        assert client.show(model).capabilities == expected
        uses = {
            "completion": lambda m: client.chat(model=m, messages=MSG,
                                                options={"num_predict": 4}),
            "tools": lambda m: client.chat(model=m, messages=MSG, tools=[TOOL],
                                           options={"num_predict": 48, "temperature": 0}),
            "thinking": lambda m: client.chat(model=m, messages=MSG, think=True,
                                              options={"num_predict": 4}),
            "vision": lambda m: client.chat(model=m, options={"num_predict": 4}, messages=[
                {"role": "user", "content": "What is this?", "images": [IMAGE]}]),
            "embedding": lambda m: client.embed(model=m, input="The sky is blue."),
        }
        for capability, use in uses.items():
            if capability in expected or capability == "embedding":  # every model embeds
                use(model)
                continue
            with pytest.raises(ollama.ResponseError) as e:
                use(model)
            assert e.value.status_code == 400, (model, capability)
    vectors = client.embed(model="smol-embed", input=["a cat", "a dog"]).embeddings
    assert len(vectors) == 2 and len(vectors[0]) == 576
    client.delete("smol-embed")


def test_an_upload_with_the_wrong_digest_is_refused(live_server: LiveServer) -> None:
    r = httpx.post(f"{live_server.base_url}/api/blobs/sha256:{'0' * 64}", content=b"abc")
    assert r.status_code == 400 and "digest mismatch" in r.json()["error"]
    r = httpx.post(f"{live_server.base_url}/api/blobs/sha256:nope", content=b"abc")
    assert r.status_code == 400 and set(r.json()) == {"error"}
    assert not [p for p in _blobs(live_server).glob("*-upload-*")]


def test_a_stalled_upload_gets_408_and_leaves_nothing(live_server: LiveServer) -> None:
    port = int(live_server.base_url.rsplit(":", 1)[1])
    digest = "sha256:" + "2" * 64
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  "Content-Length: 1000000\r\n\r\n".encode() + os.urandom(5000))
        deadline = time.monotonic() + 10
        while not list(_blobs(live_server).glob("*-upload-*")) and time.monotonic() < deadline:
            time.sleep(0.05)  # the upload has begun
        assert list(_blobs(live_server).glob("*-upload-*"))
        reply = b""
        while b"stalled" not in reply:  # COVE_REQUEST_BODY_TIMEOUT is 2 s on this server
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408") and b'{"error":' in reply
    assert not list(_blobs(live_server).glob("*-upload-*"))
    assert httpx.head(f"http://127.0.0.1:{port}/api/blobs/{digest}").status_code == 404


def test_head_probes_and_the_root_banner(live_server: LiveServer) -> None:
    base = live_server.base_url
    root = httpx.get(base + "/")
    assert (root.status_code, root.text) == (200, "Ollama is running")
    assert root.headers["content-type"].startswith("text/plain")
    head = httpx.head(base + "/")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == root.headers["content-type"]
    assert head.headers["content-length"] == str(len(root.content))
    page = httpx.get(base + "/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.headers["content-type"].startswith("text/html") and "<html" in page.text
    for path in ("/api/tags", "/api/version", "/api/ps", "/v1/models", "/health",
                 "/static/app.js", "/favicon.ico"):
        got, probed = httpx.get(base + path), httpx.head(base + path)
        assert probed.status_code == got.status_code == 200, path
        assert probed.content == b"" and probed.headers["content-type"] == \
            got.headers["content-type"], path
    assert httpx.head(base + "/api/nope").status_code == 404
    assert httpx.head(base + "/api/chat").status_code == 405  # POST only
