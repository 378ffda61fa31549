"""Schema versions: every store is brought to the newest revision when it is opened.

Processes that open a new or older store at the same moment migrate it one at a time:
each takes a lock, reads the revision again, and migrates in one transaction only if no
other process has done it meanwhile."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"
FIRST_REVISION = "0001"
# The newest revision under migrations/versions, so that opening an up-to-date store
# needs no Alembic import (0.3 s of every run's start-up); tests/test_store.py checks it
# against Alembic's own head.
HEAD_REVISION = "0005"
# PostgreSQL advisory lock held while a store migrates ("benchmig" in ASCII); advisory
# locks are per database, so stores on one server do not wait for each other.
PG_MIGRATION_LOCK = 0x62656E63686D6967


def alembic_config(connection=None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    with engine.connect() as connection:
        if current_revision(connection) == HEAD_REVISION:
            return  # the common case: no lock, no Alembic import
    from alembic import command  # before the lock: others wait less

    with _sqlite_file_lock(engine), engine.begin() as connection:
        _lock_for_migration(connection)
        current = current_revision(connection)
        if current == HEAD_REVISION:
            return  # another process migrated it while this one waited
        config = alembic_config(connection)
        if current is None and inspect(connection).has_table("runs"):
            # Made before the schema was versioned: those stores hold revision 0001's tables.
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on '<db>.lock' beside a SQLite file, waited for as long as it
    takes: SQLite's own lock gives up after its 5 s busy timeout, less than a migration
    may take on a machine busy loading models."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock, also when the process dies


def _lock_for_migration(connection: Connection) -> None:
    """The migration as one transaction that no other process migrates beside."""
    if connection.dialect.name == "sqlite":
        # pysqlite runs DDL outside any transaction unless told to begin one: without
        # this a process that dies mid-migration leaves half a schema behind.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        # Released at commit; PostgreSQL's DDL is transactional already.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})


def current_revision(connection) -> str | None:
    """The store's revision, read from the table Alembic keeps it in (None: unversioned)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str | None:
    """Alembic's own view of the newest revision."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
