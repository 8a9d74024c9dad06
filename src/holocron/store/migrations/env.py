"""Alembic environment: runs on the connection handed over by :mod:`holocron.store.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from holocron.store.schema import tables_for

config = context.config


def _run(connection: object) -> None:
    tables = tables_for(connection.dialect.name)  # type: ignore[attr-defined]
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=tables.metadata,
        include_schemas=tables.uses_schemas,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        version_table="alembic_version",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # the plain `alembic` command line, for developers
    with create_engine(config.get_main_option("sqlalchemy.url") or "").begin() as conn:
        _run(conn)
