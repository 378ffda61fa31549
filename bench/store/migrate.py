"""Schema versions: every store is brought to the newest revision when it is opened."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
FIRST_REVISION = "0001"
# The newest revision under migrations/versions, so that opening an up-to-date store
# needs no Alembic import (0.3 s of every run's start-up); tests/test_store.py checks it
# against Alembic's own head.
HEAD_REVISION = "0002"


def alembic_config(connection=None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    with engine.begin() as connection:
        current = current_revision(connection)
        if current == HEAD_REVISION:
            return  # the common case: nothing to do
        from alembic import command

        config = alembic_config(connection)
        if current is None and inspect(connection).has_table("runs"):
            # Made before the schema was versioned: those stores hold revision 0001's tables.
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")


def current_revision(connection) -> str | None:
    """The store's revision, read from the table Alembic keeps it in (None: unversioned)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str | None:
    """Alembic's own view of the newest revision."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
