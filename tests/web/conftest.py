"""Web fixtures: two signed-up users (A is the first account, hence admin) on the scripted app."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import FakeWorld
from tests.web.helpers import Browser


@pytest.fixture
def alice(fake: FakeWorld) -> Browser:
    b = Browser(fake.client)
    assert b.signup("alice@example.org").status_code == 200
    return b


@pytest.fixture
def bob(fake: FakeWorld, alice: Browser) -> Browser:
    b = Browser(TestClient(fake.app))  # no `with`: the app's lifespan belongs to `fake`
    assert b.signup("bob@example.org").status_code == 200
    return b
