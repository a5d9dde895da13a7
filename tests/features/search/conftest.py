"""Search fixtures: the web fixtures (two users on the scripted app, SQLite and PostgreSQL)."""

from tests.web.conftest import alice, bob, pg_url, settings  # noqa: F401 - fixtures
