"""Alembic environment: runs on the connection bench.store.store.open_store hands it."""

from alembic import context

from bench.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by table copy
)
with context.begin_transaction():
    context.run_migrations()
