"""What the migrations share: the naming rule of both engines, applied to Alembic's operations.

PostgreSQL keeps each area in its own schema (``ingest.work_items``); SQLite has one namespace and prefixes the
table name instead (``ingest_work_items``). A migration says the schema and the table; these helpers apply the
rule of :func:`holocron.store.schema.table_name_for`.
"""

from __future__ import annotations

from typing import Any

from alembic import op

from holocron.store.schema import column_ref, table_name_for


def uses_schemas() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def name(schema: str, table: str) -> tuple[str, str | None]:
    return table_name_for(uses_schemas(), schema, table)


def ref(dotted: str) -> str:
    """``schema.table.column`` as a foreign key target on this engine."""
    schema, table, column = dotted.split(".")
    return column_ref(uses_schemas(), schema, table, column)


def create_table(schema: str, table: str, *items: Any) -> None:
    table_name, schema_or_none = name(schema, table)
    op.create_table(table_name, *items, schema=schema_or_none)


def drop_table(schema: str, table: str) -> None:
    table_name, schema_or_none = name(schema, table)
    op.drop_table(table_name, schema=schema_or_none)


def create_index(index_name: str, schema: str, table: str, columns: list[str]) -> None:
    table_name, schema_or_none = name(schema, table)
    op.create_index(index_name, table_name, columns, unique=False, schema=schema_or_none)


def sql_in(values: tuple[str, ...]) -> str:
    """``'a', 'b'``: the inside of a CHECK constraint's IN list."""
    return ", ".join(f"'{value}'" for value in values)
