"""Shared fixtures of the real-engine tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cove.engine.llama import LlamaEngine
from cove.models.registry import bundled_model_path


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    """The bundled model with two slots of 512 cells (a module may define its own)."""
    eng = LlamaEngine(bundled_model_path(), "smollm2:135m", n_ctx=512, n_slots=2, n_threads=2)
    yield eng
    eng.close()
