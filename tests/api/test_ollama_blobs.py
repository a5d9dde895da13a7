"""Ollama's blob routes, ``/api/create`` with ``files`` and ``/api/show`` capabilities, over a
real store in a temporary home and scripted engines whose chat template is the GGUF's own (so
what the routes accept is decided exactly as with the real engine)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.app import create_app
from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.models.registry import ModelEntry, ModelRegistry
from cove.models.store import ModelStore
from tests.api.test_ollama_scripted import assert_error, lines
from tests.conftest import local_client
from tests.fake_embedder import ScriptedEmbedder
from tests.gguf_files import THINK_TEMPLATE, make_gguf

CHATML = ScriptedEngine().info.chat_template


class Store:
    """An app over a model store only: each model loads as a scripted engine with the chat
    template of its GGUF metadata."""

    def __init__(self, settings: Settings) -> None:
        self.registry = ModelRegistry(ModelStore(settings.home / "models"))
        self.loads: list[str] = []

        def loader(entry: ModelEntry, s: Settings) -> ScriptedEngine:
            self.loads.append(entry.name)
            return ScriptedEngine(name=entry.name, chat_template=entry.meta()["chat_template"])

        self.app = create_app(settings, registry=self.registry, loader=loader,
                              embed_loader=lambda e, s: ScriptedEmbedder())
        self.client = local_client(self.app)
        self.blobs = settings.home / "models" / "blobs"

    def upload(self, data: bytes, digest: str | None = None) -> Any:
        digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
        return self.client.post(f"/api/blobs/{digest}", content=data)

    def create_from(self, name: str, gguf: Path, **body: Any) -> Any:
        data = gguf.read_bytes()
        assert self.upload(data).status_code == 201
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        return self.client.post("/api/create", json={
            "model": name, "files": {gguf.name: digest}, "stream": False, **body})


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    w = Store(settings)
    with w.client:
        yield w


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- blobs ------------------------------------------------------------------------------------


def test_head_and_upload_a_blob(store: Store) -> None:
    data = b"some weights" * 1000
    digest = sha(data)
    assert store.client.head(f"/api/blobs/{digest}").status_code == 404
    r = store.upload(b"other bytes", digest)
    assert_error(r, 400, "digest mismatch")
    assert store.client.head(f"/api/blobs/{digest}").status_code == 404
    assert list(store.blobs.iterdir()) == []  # nothing of the failed upload is kept
    assert store.upload(data).status_code == 201
    assert (store.blobs / digest.replace(":", "-")).read_bytes() == data
    r = store.client.head(f"/api/blobs/{digest}")
    assert r.status_code == 200 and r.content == b""
    assert store.upload(data).status_code == 200  # already there
    assert store.client.head(f"/api/blobs/{digest.upper().replace('SHA256', 'sha256')}"
                             ).status_code == 200
    assert store.client.head(f"/api/blobs/{digest.replace(':', '-')}").status_code == 200


@pytest.mark.parametrize("digest", ["sha256:xyz", "md5:" + "0" * 32, "sha256:" + "0" * 63,
                                    "0" * 64, "sha256:" + "g" * 64])
def test_a_bad_digest_is_400(store: Store, digest: str) -> None:
    assert_error(store.client.post(f"/api/blobs/{digest}", content=b"x"), 400, "digest")
    r = store.client.head(f"/api/blobs/{digest}")
    assert r.status_code == 400 and r.content == b""
    assert not store.blobs.exists() or list(store.blobs.iterdir()) == []


def test_an_upload_is_not_held_to_the_body_limit(store: Store, settings: Settings) -> None:
    big = bytes(range(256)) * (3 * settings.max_body_bytes // 256)
    assert store.upload(big).status_code == 201
    assert store.client.head(f"/api/blobs/{sha(big)}").status_code == 200
    # the exemption is this one route: any other body over the limit is still refused
    r = store.client.post("/api/chat", content=b'{"model": "x", "prompt": "' + big + b'"}')
    assert_error(r, 413)
    r = store.client.post(f"/api/blobs/{sha(big)}/more", content=big)
    assert r.status_code == 413


# -- create with files ------------------------------------------------------------------------


def test_create_from_an_uploaded_gguf(store: Store, tmp_path: Path) -> None:
    gguf = make_gguf(tmp_path / "model.gguf", template=THINK_TEMPLATE)
    r = store.create_from("mine", gguf, system="Be brief.", license="MIT",
                          parameters={"temperature": 0.2, "stop": ["###"]})
    assert r.json() == {"status": "success"}
    assert "mine:latest" in [m["name"] for m in store.client.get("/api/tags").json()["models"]]
    show = store.client.post("/api/show", json={"model": "mine"}).json()
    assert show["system"] == "Be brief." and show["license"] == "MIT"
    assert "temperature" in show["parameters"] and show["template"] == THINK_TEMPLATE
    assert show["details"]["family"] == "llama"
    assert show["capabilities"] == ["completion", "tools", "thinking"]
    # the blob is the model's weights: shared, not copied
    entry = store.registry.resolve("mine")
    assert entry.path == store.blobs / sha(gguf.read_bytes()).replace(":", "-")
    r = store.client.post("/api/chat", json={"model": "mine", "stream": False, "think": True,
                                             "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and store.loads == ["mine:latest"]


def test_create_from_files_streams_progress(store: Store, tmp_path: Path) -> None:
    gguf = make_gguf(tmp_path / "m.gguf")
    digest = sha(gguf.read_bytes())
    assert store.upload(gguf.read_bytes()).status_code == 201
    out = lines(store.client.post("/api/create", json={"model": "m2",
                                                       "files": {"m.gguf": digest}}))
    statuses = [o["status"] for o in out]
    assert statuses == ["parsing GGUF", f"using existing layer {digest}", "writing manifest",
                        "success"]


def test_create_with_a_vision_projector(store: Store, tmp_path: Path) -> None:
    model = make_gguf(tmp_path / "model.gguf")
    proj = make_gguf(tmp_path / "mmproj.gguf", arch="clip", seed=1)
    for f in (model, proj):
        assert store.upload(f.read_bytes()).status_code == 201
    r = store.client.post("/api/create", json={"model": "seer", "stream": False, "files": {
        "model.gguf": sha(model.read_bytes()), "mmproj.gguf": sha(proj.read_bytes())}})
    assert r.status_code == 200, r.text
    entry = store.registry.resolve("seer")
    assert entry.projector is not None and entry.projector.read_bytes() == proj.read_bytes()
    assert entry.meta()["architecture"] == "llama"


def _uploaded(store: Store, data: bytes) -> str:
    assert store.upload(data).status_code in (200, 201)
    return sha(data)


def test_create_errors(store: Store, tmp_path: Path) -> None:
    gguf = make_gguf(tmp_path / "model.gguf")
    good = _uploaded(store, gguf.read_bytes())
    not_gguf = _uploaded(store, b'{"safetensors": "header"}' + b"\0" * 64)
    corrupt = _uploaded(store, b"GGUF" + b"\xff" * 60)
    split = make_gguf(tmp_path / "part.gguf", seed=2)
    proj = make_gguf(tmp_path / "mmproj.gguf", arch="clip", seed=3)
    only_proj = _uploaded(store, proj.read_bytes())
    missing = "sha256:" + "1" * 64

    def create(**body: Any) -> Any:
        return store.client.post("/api/create", json={"model": "x", "stream": True, **body})

    cases = [
        ({"files": {"a.gguf": missing}}, "upload it first"),
        ({"files": {"a.safetensors": not_gguf}}, "not a usable gguf"),
        ({"files": {"a.gguf": corrupt}}, "not a usable gguf"),
        ({"files": {"a.gguf": "sha256:nothex"}}, "digest"),
        ({"files": {}}, "'files' is empty"),
        ({"files": {"a.gguf": good, "b.gguf": _uploaded(store, split.read_bytes())}},
         "more than one model"),
        ({"files": {"mmproj.gguf": only_proj}}, "only a vision projector"),
        ({"files": {"a.gguf": good}, "from": "mine"}, "not both"),
        ({"files": {"a.gguf": good}, "template": "{{ .Prompt }}"}, "template"),
        ({"files": {"a.gguf": good}, "messages": [{"role": "user", "content": "x"}]},
         "message"),
        ({"files": {"a.gguf": good}, "quantize": "q4_K_M"}, "quantiz"),
        ({"files": {"a.gguf": good}, "adapters": {"l.gguf": good}}, "adapter"),
        ({"files": {"a.gguf": good}, "parameters": {"temprature": 1}}, "temprature"),
        ({"files": {"a.gguf": good}, "model": "../x"}, ""),
        ({}, "'from' (the base model) or 'files'"),
    ]
    for body, words in cases:
        assert_error(create(**body), 400, words)  # a 400 before any stream starts
    assert "x:latest" not in [m["name"] for m in store.client.get("/api/tags").json()["models"]]


def test_a_split_gguf_is_refused(store: Store, tmp_path: Path) -> None:
    path = make_gguf(tmp_path / "m-00001-of-00002.gguf", ints={"split.count": 2, "split.no": 0})
    digest = _uploaded(store, path.read_bytes())
    r = store.client.post("/api/create", json={"model": "x", "files": {path.name: digest}})
    assert_error(r, 400, "split GGUF")


# -- capabilities: what /api/show advertises is what the routes accept --------------------------

IMAGE = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
MSG = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "now", "description": "the time",
                                         "parameters": {"type": "object", "properties": {}}}}


def _uses(store: Store, model: str, capability: str) -> int:
    """The status of a request that needs ``capability`` from ``model``."""
    c = store.client
    if capability == "completion":
        statuses = {c.post("/api/chat", json={"model": model, "messages": MSG,
                                              "stream": False}).status_code,
                    c.post("/api/generate", json={"model": model, "prompt": "hi",
                                                  "stream": False}).status_code,
                    c.post("/api/generate", json={"model": model, "prompt": "hi", "raw": True,
                                                  "stream": False}).status_code,
                    c.post("/v1/chat/completions", json={"model": model,
                                                         "messages": MSG}).status_code}
        assert len(statuses) == 1, statuses  # both APIs agree
        return statuses.pop()
    if capability == "tools":
        return c.post("/api/chat", json={"model": model, "messages": MSG, "stream": False,
                                         "tools": [TOOL]}).status_code
    if capability == "thinking":
        return c.post("/api/chat", json={"model": model, "messages": MSG, "stream": False,
                                         "think": True}).status_code
    if capability == "vision":
        return c.post("/api/chat", json={"model": model, "stream": False, "messages": [
            {"role": "user", "content": "what is this?", "images": [IMAGE]}]}).status_code
    assert capability == "embedding"
    return c.post("/api/embed", json={"model": model, "input": "hi"}).status_code


@pytest.mark.parametrize("kind", ["plain", "thinking", "vision keys", "embedding"])
def test_show_capabilities_match_what_the_routes_accept(store: Store, tmp_path: Path,
                                                        kind: str) -> None:
    path = tmp_path / "m.gguf"
    if kind == "embedding":
        make_gguf(path, arch="bert")
    elif kind == "vision keys":
        make_gguf(path, template=CHATML, ints={"llama.vision.block_count": 2,
                                               "clip.has_vision_encoder": 1})
    else:
        make_gguf(path, template=THINK_TEMPLATE if kind == "thinking" else CHATML)
    assert store.create_from("m", path).status_code == 200
    advertised = store.client.post("/api/show", json={"model": "m"}).json()["capabilities"]
    expected = {"plain": ["completion", "tools"], "thinking": ["completion", "tools", "thinking"],
                "vision keys": ["completion", "tools"], "embedding": ["embedding"]}[kind]
    assert advertised == expected
    for capability in ("completion", "tools", "thinking", "vision", "embedding"):
        status = _uses(store, "m", capability)
        if capability in advertised:
            assert status == 200, (capability, status)
        elif capability == "embedding":
            # as in Ollama, every model embeds; "embedding" marks an embedding-only model
            assert status == 200
        else:
            assert status == 400, (capability, status)
    if kind == "embedding":
        assert store.loads == []  # refused before the model was ever loaded for chat
    r = store.client.post("/v1/chat/completions", json={"model": "m", "messages": MSG})
    if kind == "embedding":
        assert r.json()["error"]["param"] == "model"


def test_uploads_need_a_key_once_accounts_exist(store: Store) -> None:
    r = store.client.post("/web/signup", json={"email": "a@example.org",
                                               "password": "correct horse battery"})
    assert r.status_code == 200
    store.client.cookies.clear()
    data = b"weights" * 100
    assert_error(store.upload(data), 401)
    assert store.client.head(f"/api/blobs/{sha(data)}").status_code == 401
    assert not store.blobs.exists() or list(store.blobs.iterdir()) == []
