"""The migrations build exactly the tables of ``store/schema.py``, on both engines.

Alembic's autogenerate compares a migrated database with the SQLAlchemy metadata; an empty diff means that a
new column, index or constraint added to one and not the other fails here, not in a user's upgrade.
"""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from holocron.store.database import Database
from holocron.store.migrate import SchemaTooNewError
from holocron.store.schema import UNMAPPED_SQLITE_PREFIX


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Everything but the FTS5 tables that schema.py documents as made by raw DDL, and Alembic's own."""
    if type_ == "table" and name and name.startswith(UNMAPPED_SQLITE_PREFIX):
        return False
    return not (type_ == "table" and name == "alembic_version")


def schema_diff(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": db.t.uses_schemas,
                "include_object": _include,
                "compare_type": True,
                "compare_server_default": False,
            },
        )
        return list(compare_metadata(context, db.t.metadata))


def test_migrations_match_the_schema(db: Database) -> None:
    assert schema_diff(db) == []


def test_a_column_missing_from_the_migrations_is_found(db: Database) -> None:
    """The comparison is live: a table the migrations never made shows up as a difference."""
    from sqlalchemy import Column, Integer, MetaData, Table

    extra = MetaData()
    for table in db.t.metadata.tables.values():
        table.to_metadata(extra)
    Table("not_migrated", extra, Column("id", Integer, primary_key=True), schema=db.t.ingest_records.schema)
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_schemas": db.t.uses_schemas, "include_object": _include}
        )
        diff = compare_metadata(context, extra)
    assert [d[1].name for d in diff if d[0] == "add_table"] == ["not_migrated"]


def test_the_fast_revision_check_names_alembics_head(db: Database) -> None:
    """``Database.upgrade`` skips alembic when the store is at HEAD_REVISION: that must be the newest migration."""
    from holocron.store.migrate import current_revision, head_revision
    from holocron.store.revision import HEAD_REVISION

    assert head_revision(db) == HEAD_REVISION == current_revision(db)
    assert db.upgrade() is False  # already there: recognised by one query
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(SchemaTooNewError):  # any other revision goes through alembic, which knows it not
        db.upgrade()
