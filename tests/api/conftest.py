"""Fixtures of the API tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from tests.api.test_openai_scripted import R1_TEMPLATE
from tests.conftest import FakeWorld


@pytest.fixture
def thinker(settings: Settings) -> Iterator[FakeWorld]:
    """A scripted app whose every model reasons (an R1-style template that opens ``<think>``
    in the prompt)."""
    world = FakeWorld(settings, ScriptedEngine(name="thinker:latest", chat_template=R1_TEMPLATE))
    with world.client:
        yield world
