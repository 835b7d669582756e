"""Runs the Alembic migrations shipped inside the package."""

from __future__ import annotations

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, create_engine, text

from openvpp.store.database import advisory_key, sync_url

_MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sync_url(url).render_as_string(hide_password=False))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Brings the database at `url` to `revision` (creating the SQLite file's directory)."""
    parsed = sync_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Processes (or threads) migrating one file take turns, as on PostgreSQL.
        with path.with_name(path.name + ".migrate-lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _upgrade(url, parsed, revision)
        return
    _upgrade(url, parsed, revision)


def _upgrade(url: str, parsed: URL, revision: str) -> None:
    config = alembic_config(url)
    engine = create_engine(parsed)
    try:
        with engine.begin() as connection:
            if parsed.get_backend_name() == "postgresql":
                # Replicas starting together on one database take turns: the
                # first migrates, the others then find it at the revision.
                # Held to the end of this transaction (DDL is transactional).
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key("migrations")})
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
