"""Facts about the database itself: ``vector_store_info`` (migration 0003), one value per key.

``store_id`` is a random id generated once per database by the migration; files kept beside the database
(the embedded ANN index) carry it to prove they belong to this one and not to another. Other keys are
written by the code that owns them (e.g. ``log_pruned:<space id>``, see :mod:`holocron.store.embeddings`).
"""

from __future__ import annotations

from sqlalchemy import select, update

from holocron.store.database import Tx, insert_ignoring_conflicts

STORE_ID = "store_id"


def get_info(tx: Tx, key: str) -> str | None:
    """The value stored under ``key``, or None."""
    table = tx.t.store_info
    value = tx.execute(select(table.c.value).where(table.c.key == key)).scalar()
    return None if value is None else str(value)


def set_info(tx: Tx, key: str, value: str) -> None:
    """Store ``value`` under ``key`` (inserted, or replacing the old value); call inside a write transaction."""
    table = tx.t.store_info
    tx.execute(insert_ignoring_conflicts(tx, table, ["key"]).values(key=key, value=value))
    tx.execute(update(table).where(table.c.key == key, table.c.value != value).values(value=value))


def store_id(tx: Tx) -> str:
    """This database's identity (generated once, by migration 0003)."""
    value = get_info(tx, STORE_ID)
    if not value:
        raise RuntimeError("this database has no store_id: run `holocron db upgrade` (migration 0003)")
    return value
