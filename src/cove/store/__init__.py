"""The database: SQLAlchemy 2 tables, engine/session setup, Alembic migrations run at startup."""
