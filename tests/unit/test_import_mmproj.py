"""``cove import --mmproj``: the projector goes into the manifest; mix-ups are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import InvalidRequest
from cove.models import capabilities
from cove.models.manage import import_gguf
from cove.models.registry import ModelRegistry
from cove.models.store import ModelStore
from tests.gguf_files import make_gguf
from tests.vision_fixture import write_projector


def test_import_with_a_projector(tmp_path: Path) -> None:
    registry = ModelRegistry(ModelStore(tmp_path / "models"))
    model = make_gguf(tmp_path / "tiny.gguf")
    projector = write_projector(tmp_path / "mmproj.gguf")
    entry = import_gguf(registry, model, "tiny-vl", mmproj=projector)
    assert entry.projector is not None and entry.projector.read_bytes() == projector.read_bytes()
    assert "vision" in capabilities.of(entry.meta(), entry.projector is not None)
    plain = import_gguf(registry, model, "tiny")
    assert plain.projector is None
    with pytest.raises(InvalidRequest, match="is a vision projector, not a model") as e:
        import_gguf(registry, projector, "oops")
    assert e.value.param == "file"
    with pytest.raises(InvalidRequest, match="is not a vision projector") as e:
        import_gguf(registry, model, "oops", mmproj=model)
    assert e.value.param == "mmproj"
