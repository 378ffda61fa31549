"""Request cache: a model's answer to one lm-eval request, kept in the store.

Keyed by a namespace (model weights hash, backend, settings that change answers) and the
request itself (type and arguments, prompt included). Answers are written as they
arrive, so a crashed run resumes without asking the model again, an identical rerun
makes no model calls, and a new task reuses the requests it shares with earlier ones.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from bench.store.schema import CachedAnswer


def digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class RequestCache:
    def __init__(self, engine: Engine, namespace: str):
        self.engine = engine
        self.namespace = namespace

    def key(self, request_type: str, args: Any) -> str:
        return digest(self.namespace, request_type, args)

    def get_many(self, keys: list[str]) -> dict[str, tuple[Any, dict]]:
        found: dict[str, tuple[Any, dict]] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(keys), 500):
                query = select(CachedAnswer.key, CachedAnswer.answer, CachedAnswer.timing).where(
                    CachedAnswer.key.in_(keys[start : start + 500])
                )
                for key, answer, timing in connection.execute(query):
                    found[key] = (answer, timing)
        return found

    def put_many(self, rows: list[tuple[str, str, Any, dict]]) -> None:
        """Store (key, request_type, answer, timing) rows; a key already there is kept."""
        if not rows:
            return
        now = datetime.now(UTC)
        values = [
            dict(
                key=k, namespace=self.namespace, request_type=t, answer=a, timing=tm, created_at=now
            )
            for k, t, a, tm in rows
        ]
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(CachedAnswer).values(values).on_conflict_do_nothing()
        with self.engine.begin() as connection:
            connection.execute(statement)
