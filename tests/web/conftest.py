"""Web fixtures: two signed-up users (A is the first account, hence admin) on the scripted app,
whose store is SQLite and, where PostgreSQL 15 is installed, also a fresh PostgreSQL database
(every test using ``fake`` runs on both)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.app import create_app
from cove.config import Settings
from cove.engine.fake import ScriptedEngine
from cove.models.registry import ModelEntry, ModelRegistry
from tests import pg
from tests.api.test_openai_scripted import R1_TEMPLATE
from tests.conftest import FakeWorld, free_port, local_client
from tests.web.browser import ThreadServer, chromium
from tests.web.helpers import Browser


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL server's URL (its database ``cove``), for the whole session."""
    if not pg.available():
        pytest.skip("PostgreSQL server not installed")
    with pg.postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """The scripted app's settings, its store on SQLite or on a new PostgreSQL database."""
    home = tmp_path / "home"
    if request.param == "sqlite":
        yield Settings(home=home, max_queue=4, max_body_bytes=256 * 1024)
        return
    with pg.fresh_database(request.getfixturevalue("pg_url")) as url:
        yield Settings(home=home, max_queue=4, max_body_bytes=256 * 1024, database_url=url)


@pytest.fixture
def alice(fake: FakeWorld) -> Browser:
    b = Browser(fake.client)
    assert b.signup("alice@example.org").status_code == 200
    return b


@pytest.fixture
def bob(fake: FakeWorld, alice: Browser) -> Browser:
    b = Browser(local_client(fake.app))  # no `with`: the app's lifespan belongs to `fake`
    assert b.signup("bob@example.org").status_code == 200
    return b


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # module scope: Playwright's sync API keeps an event loop running in this thread while it
    # is open, which would break asyncio.run() in tests of other modules
    with chromium() as b:
        yield b


class Site:
    """A live scripted Cove: ``base_url``, the ``engines`` by model name, the app's database."""

    def __init__(self, base_url: str, engines: dict[str, ScriptedEngine], app: Any) -> None:
        self.base_url = base_url
        self.engines = engines
        self.app = app

    def rows(self, table: Any) -> int:
        from sqlalchemy import func, select

        with self.app.state.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(table)) or 0)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """The web app over two scripted models: ``scripted:latest`` (ChatML) and
    ``thinker:latest`` (an R1-style template, so its output is split into reasoning/answer)."""
    engines = {"scripted:latest": ScriptedEngine(name="scripted:latest"),
               "thinker:latest": ScriptedEngine(name="thinker:latest",
                                                chat_template=R1_TEMPLATE)}
    registry = ModelRegistry()
    for name in engines:
        registry.add(ModelEntry(name, Path(f"/nonexistent/{name}.gguf"), "scripted"))
    settings = Settings(home=tmp_path / "home", default_model="scripted:latest")
    app = create_app(settings, registry=registry, loader=lambda entry, s: engines[entry.name])
    with ThreadServer(app, free_port()) as server:
        yield Site(server.base_url, engines, app)


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh browser tab (own cookies) on the site, failing the test on any JS dialog it did
    not expect, any page error, and any request that leaves the site."""
    # bypass_csp: the page's Content-Security-Policy would block inline handlers anyway; without
    # it, the XSS tests show that the sanitising alone stops them (and Playwright may evaluate)
    context = browser.new_context(base_url=site.base_url, bypass_csp=True)
    pg = context.new_page()
    pg.problems = []
    pg.on("pageerror", lambda e: pg.problems.append(f"page error: {e}"))
    pg.on("request", lambda r: r.url.startswith(site.base_url) or r.url.startswith("data:")
          or pg.problems.append(f"offsite request: {r.url}"))
    pg.goto("/")
    pg.wait_for_selector("body[data-ready='1']")
    yield pg
    context.close()
    assert pg.problems == []
