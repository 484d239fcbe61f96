"""Alembic environment: portscope passes its own connection (``config.attributes``)."""

from __future__ import annotations

from alembic import context

from portscope.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - portscope always passes one
    raise RuntimeError("portscope's migrations run through 'portscope db upgrade'")

context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
