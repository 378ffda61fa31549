"""Schema versions: every store is brought to the newest revision when it is opened."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
FIRST_REVISION = "0001"


def alembic_config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    with engine.begin() as connection:
        current = current_revision(connection)
        if current == head_revision():
            return  # the common case: nothing to do, and no Alembic start-up cost
        config = alembic_config(connection)
        if current is None and inspect(connection).has_table("runs"):
            # Made before the schema was versioned: those stores hold revision 0001's tables.
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")


def current_revision(connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
