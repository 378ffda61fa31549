"""`bench store backup`: a SQLite store copied into one self-contained file.

Copying bench.db by hand can miss what bench.db-wal holds, or catch a page half
written; SQLite's backup API reads one consistent snapshot, WAL included, while other
processes keep writing."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.errors import BadInput
from bench.store.store import public_url, store_url

# SQLite's files beside a database: a stale one next to a new copy would be replayed
# into it on open, so they go with DEST.
SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class Backup:
    path: Path
    """The file written."""
    runs: int
    """Runs it holds, counted in the copy itself."""


def backup_store(url: str | None, dest: Path, force: bool = False) -> Backup:
    """Copies the store at `url` (--store, $BENCH_STORE, results/bench.db) to `dest`;
    an existing `dest` is replaced only with `force`."""
    url = store_url(url)
    source = _sqlite_file(url, dest)
    dest = Path(dest)
    if dest.exists() and dest.resolve() == source.resolve():
        raise BadInput(f"{dest} is the store itself: back it up to another file")
    if dest.is_dir():
        raise BadInput(f"{dest} is a folder: give the backup's file name")
    present = [p for p in _with_side_files(dest) if p.exists()]
    if present and not force:
        raise BadInput(f"{present[0]} exists: pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Written beside DEST and renamed over it: DEST is never half a store.
    partial = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    _remove(_with_side_files(partial))  # left by a backup that was killed
    try:
        runs = _copy(source, partial)
        _remove(_with_side_files(dest)[1:])  # a stale -wal would be replayed into the copy
        os.replace(partial, dest)
    finally:
        _remove(_with_side_files(partial))
    return Backup(dest, runs)


def _sqlite_file(url: str, dest: Path) -> Path:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        raise BadInput(
            f"the store {public_url(url)} is a PostgreSQL database: back it up with "
            f"pg_dump, e.g. pg_dump --format=custom --file {dest} '{public_url(url)}' "
            "(with your user and password)"
        )
    if backend != "sqlite":
        raise BadInput(f"the store {public_url(url)} is not a SQLite file: use {backend}'s tools")
    if not parsed.database or parsed.database == ":memory:":
        raise BadInput(f"the store {url} is in memory: there is no file to back up")
    source = Path(parsed.database)
    if not source.is_file():
        raise BadInput(f"no store at {source}")
    return source


def _copy(source: Path, dest: Path) -> int:
    try:
        with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(dest)) as out:
            if not src.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone():
                raise BadInput(f"{source} is not a bench store: it has no runs table")
            src.backup(out)
            # A rollback journal: the copy is one file, readable where a WAL could not be
            # made (read-only media, another user's folder).
            out.execute("PRAGMA journal_mode=DELETE")
            return out.execute("SELECT count(*) FROM runs").fetchone()[0]
    except sqlite3.DatabaseError as err:
        raise BadInput(f"{source} could not be read as a SQLite store: {err}") from err


def _with_side_files(path: Path) -> list[Path]:
    return [path, *(path.with_name(path.name + suffix) for suffix in SIDE_FILES)]


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
