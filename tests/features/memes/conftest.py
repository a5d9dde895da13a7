"""Meme fixtures: the web fixtures (two users on the scripted app, SQLite and PostgreSQL; the
live site and a chromium tab)."""

from tests.web.conftest import alice, bob, browser, page, pg_url, settings, site  # noqa: F401
