"""The model store: references, import (file and Ollama store), copy, remove, presets."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from cove.config import Settings
from cove.engine.types import SamplingParams
from cove.errors import InvalidModelName, InvalidRequest, ModelNotFound
from cove.models import manage
from cove.models.names import parse_ref
from cove.models.registry import ModelRegistry, bundled_model_path
from cove.models.store import ModelStore, sha256_file
from cove.pipeline import ChatMessage, ChatPipeline, ChatRequest
from tests.gguf_files import THINK_TEMPLATE, make_gguf


@pytest.mark.parametrize("text,name,tag", [
    ("qwen2.5", "qwen2.5", "latest"), ("Qwen2.5:0.5B", "qwen2.5", "0.5b"),
    ("user/model:v1", "user/model", "v1"),
    ("hf.co/Bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M",
     "hf.co/bartowski/qwen2.5-7b-instruct-gguf", "q4_k_m"),
    ("huggingface.co/a/b", "hf.co/a/b", "latest"),
])
def test_valid_refs(text: str, name: str, tag: str) -> None:
    ref = parse_ref(text)
    assert (ref.name, ref.tag) == (name, tag)


def test_hf_ref_keeps_case_for_the_hub() -> None:
    ref = parse_ref("hf.co/Bartowski/Repo-GGUF:q8_0")
    assert (ref.repo_id, ref.quant) == ("Bartowski/Repo-GGUF", "q8_0")
    assert parse_ref("hf.co/a/b").quant == "Q4_K_M"


@pytest.mark.parametrize("text", [
    "", " ", "../x", "a/../b", "/etc/passwd", "a\\b", "~/x", ".hidden", "a:b:c", "a:",
    "x\x00y", "a/b/c", "hf.co/a", "hf.co/a/b/c", "hf.co/../b", "né", "a b", "-x", "x" * 200,
])
def test_invalid_refs(text: str) -> None:
    with pytest.raises(InvalidModelName):
        parse_ref(text)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(ModelStore(tmp_path / "home" / "models"))


def test_import_links_and_reads_metadata(registry: ModelRegistry, tmp_path: Path) -> None:
    src = make_gguf(tmp_path / "My-Model.Q8_0.gguf", template=THINK_TEMPLATE)
    entry = manage.import_gguf(registry, src)
    assert entry.name == "my-model.q8_0:latest"
    assert entry.path.samefile(src) or entry.path.read_bytes() == src.read_bytes()
    assert entry.digest == sha256_file(src)
    meta = entry.meta()
    assert meta["architecture"] == "llama" and meta["context_length"] == 2048
    assert meta["capabilities"] == ["completion", "tools", "thinking"]
    assert meta["parameter_count"] == 4096 and meta["quantization"] == "F32"
    with pytest.raises(InvalidRequest):
        manage.import_gguf(registry, tmp_path / "missing.gguf", "x")
    (tmp_path / "fake.gguf").write_bytes(b"not a gguf")
    with pytest.raises(InvalidRequest):
        manage.import_gguf(registry, tmp_path / "fake.gguf", "x")
    with pytest.raises(InvalidRequest):
        manage.import_gguf(registry, src, "smollm2:135m")


def test_copy_remove_and_garbage_collection(registry: ModelRegistry, tmp_path: Path) -> None:
    src = make_gguf(tmp_path / "a.gguf")
    a = manage.import_gguf(registry, src, "a")
    manage.copy_model(registry, "a", "b:v2")
    manage.remove_model(registry, "a")
    assert a.path.exists()  # still used by b:v2
    assert [e.name for e in registry.list()] == ["b:v2", "smollm2:135m"]
    manage.remove_model(registry, "b:v2")
    assert not a.path.exists() and src.exists()  # the user's file is untouched
    with pytest.raises(ModelNotFound):
        manage.remove_model(registry, "b:v2")
    with pytest.raises(InvalidRequest):
        manage.remove_model(registry, "smollm2:135m")


def test_presets_from_yaml_and_toml(registry: ModelRegistry, tmp_path: Path) -> None:
    y = tmp_path / "p.yaml"
    y.write_text('from: smollm2:135m\nsystem: Be brief.\nparameters:\n  temperature: 0.2\n'
                 '  stop: "###"\n')
    entry = manage.create_preset(registry, "brief", manage.read_preset_file(y))
    assert entry.system == "Be brief." and entry.options == {"temperature": 0.2,
                                                             "stop": ["###"]}
    assert entry.path == bundled_model_path() and entry.parent == "smollm2:135m"
    t = tmp_path / "p.toml"
    t.write_text('from = "brief"\n[parameters]\nnum_ctx = 2048\n')
    entry = manage.create_preset(registry, "brief2", manage.read_preset_file(t))
    assert entry.options == {"temperature": 0.2, "stop": ["###"], "num_ctx": 2048}
    assert entry.system == "Be brief."
    for bad in ("system: x\n", "from: nope\n", "from: smollm2\nparameters: {temperature: hot}\n",
                ": : :\n"):
        y.write_text(bad)
        with pytest.raises((InvalidRequest, ModelNotFound)):
            manage.create_preset(registry, "bad", manage.read_preset_file(y))


def test_a_typo_in_a_preset_is_an_error_not_silently_ignored(registry: ModelRegistry,
                                                             tmp_path: Path) -> None:
    """`temprature: 0.1` or `sytem:` used to create a preset that quietly did nothing."""
    y = tmp_path / "p.yaml"
    for text, what in (("from: smollm2\nparameters: {temprature: 0.1}\n",
                        "unknown parameter 'temprature'"),
                       ("from: smollm2\nsytem: Be brief.\n", "unknown key 'sytem'")):
        y.write_text(text)
        with pytest.raises(InvalidRequest, match=what):
            manage.read_preset_file(y)
    # Ollama's own options that Cove does not use are accepted (and ignored), as in requests
    y.write_text("from: smollm2\nparameters: {num_gpu: 0, mirostat: 1, temperature: 0.3}\n")
    assert manage.read_preset_file(y).options == {"temperature": 0.3}


def _fake_ollama_store(root: Path, gguf: Path) -> None:
    """Lay out an Ollama store like ~/.ollama/models (manifests/<host>/<ns>/<model>/<tag>)."""
    blobs = root / "blobs"
    blobs.mkdir(parents=True)

    def blob(data: bytes | None = None, path: Path | None = None) -> dict[str, object]:
        if path is not None:
            digest = sha256_file(path)
            target = blobs / digest.replace(":", "-")
            try:
                os.link(path, target)
            except OSError:
                target.write_bytes(path.read_bytes())
        else:
            assert data is not None
            import hashlib

            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            (blobs / digest.replace(":", "-")).write_bytes(data)
        return {"digest": digest, "size": (blobs / digest.replace(":", "-")).stat().st_size}

    layers = [
        {"mediaType": "application/vnd.ollama.image.model", **blob(path=gguf)},
        {"mediaType": "application/vnd.ollama.image.system", **blob(b"You are terse.")},
        {"mediaType": "application/vnd.ollama.image.params",
         **blob(json.dumps({"temperature": 0.0, "stop": ["<|im_end|>"]}).encode())},
        {"mediaType": "application/vnd.ollama.image.template", **blob(b"{{ .Prompt }}")},
    ]
    manifest = {"schemaVersion": 2,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           **blob(b"{}")},
                "layers": layers}
    for rel in ("registry.ollama.ai/library/smol/135m", "hf.co/someone/Smol-GGUF/Q4_1"):
        path = root / "manifests" / rel
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(manifest))
    bad = root / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")


@pytest.mark.real_model
def test_import_ollama_store_and_chat(registry: ModelRegistry, tmp_path: Path) -> None:
    root = tmp_path / "ollama"
    _fake_ollama_store(root, bundled_model_path())
    results = dict(manage.import_ollama(registry, root))
    assert results["smol:135m"] == "imported"
    assert results["hf.co/someone/smol-gguf:q4_1"] == "imported"
    assert "skipped" in results["broken:latest"]
    entry = registry.resolve("smol:135m")
    assert entry.system == "You are terse."
    assert entry.options == {"temperature": 0.0, "stop": ["<|im_end|>"]}
    assert entry.path.stat().st_ino == bundled_model_path().stat().st_ino or (
        entry.path.stat().st_size == bundled_model_path().stat().st_size)

    async def chat() -> str:
        pipeline = ChatPipeline(Settings(home=tmp_path / "home", n_ctx=512), registry)
        try:
            stream = await pipeline.start_chat(ChatRequest(
                [ChatMessage("user", "Name a colour.")], SamplingParams(max_tokens=12),
                model="smol:135m", explicit=frozenset({"max_tokens"})))
            return (await stream.collect()).content
        finally:
            pipeline.close()

    assert asyncio.run(chat()).strip()
    with pytest.raises(InvalidRequest):
        manage.import_ollama(registry, tmp_path / "nowhere")


def test_import_ollama_rejects_a_blob_that_does_not_match(registry: ModelRegistry,
                                                           tmp_path: Path) -> None:
    root = tmp_path / "ollama"
    _fake_ollama_store(root, make_gguf(tmp_path / "t.gguf"))
    model_blob = next(p for p in (root / "blobs").iterdir() if p.stat().st_size > 1000)
    os.unlink(model_blob)
    model_blob.write_bytes(b"GGUF" + b"\0" * 5000)
    results = dict(manage.import_ollama(registry, root))
    assert all("skipped" in r for r in results.values()), results
    assert [e.name for e in registry.list()] == ["smollm2:135m"]


def test_nothing_escapes_the_store(registry: ModelRegistry, tmp_path: Path) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text("keep")
    src = make_gguf(tmp_path / "a.gguf")
    for bad in ("../victim", "../../victim", str(victim), "hf.co/../../victim"):
        with pytest.raises(InvalidRequest, match="is not a valid model name"):
            manage.import_gguf(registry, src, bad)
        with pytest.raises(InvalidModelName):
            manage.remove_model(registry, bad)
    assert victim.read_text() == "keep"
    assert registry.store is not None and not registry.store.manifests.exists()
