"""Registering a finished run: the manifest, the registry entry and the kept blobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import Conflict
from cove.features.train import service
from cove.models.names import parse_ref
from cove.models.registry import ModelRegistry
from cove.models.store import ModelStore


def test_a_finished_run_becomes_a_model_over_its_base(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    registry = ModelRegistry(store)
    base = registry.resolve("smollm2:135m")
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"GGUF adapter bytes")
    spec = {"name": "tuned", "recipe": "sft", "base": {"name": base.name, "digest": "sha256:"
                                                         + "0" * 64},
            "data": "/data/d.jsonl", "data_digest": "sha256:" + "1" * 64, "examples": 5,
            "held_out": 1, "options": {"rewards": {"format": 1.0}, "lr": 1e-3, "lora_rank": 8,
                                       "epochs": 1.0, "max_steps": 4, "batch_size": 2,
                                       "system": None}}
    done = {"steps": 4, "adapter_gguf": str(adapter),
            "scores": {"before": {"formatted": 0.0}, "after": {"formatted": 0.5}}}
    assert service.register(registry, spec, done) == "tuned:latest"
    entry = registry.resolve("tuned")
    assert entry.path == base.path  # the base's weights, not a copy
    assert entry.adapter is not None and entry.adapter.read_bytes() == b"GGUF adapter bytes"
    assert entry.parent == "smollm2:135m" and "sft adapter over smollm2:135m" in entry.description
    assert entry.source["steps"] == 4 and entry.source["scores"]["after"] == {"formatted": 0.5}
    assert store.collect_garbage() == []  # the adapter blob is in use
    with pytest.raises(Conflict):
        service.register(registry, spec, done)
    store.remove(parse_ref("tuned"))
    assert not list(store.blobs.iterdir())  # the adapter went with its model
