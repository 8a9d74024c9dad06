"""Evidence bundles and their items (``llm.evidence_bundle`` / ``llm.evidence_item``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from holocron.store.database import Database, Tx
from holocron.store.types import utcnow


def save_bundle(db: Database, bundle: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> str:
    """Store a bundle row and its item rows (column values, as the evidence layer maps them) in one
    transaction; returns the bundle id. The store knows tables, not bundles: it imports nothing above it."""
    with db.write() as tx:
        return save_bundle_in(tx, bundle, items)


def save_bundle_in(tx: Tx, bundle: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> str:
    """:func:`save_bundle` inside the caller's transaction (an LLM run stores its bundle with its answer)."""
    now = utcnow()
    tx.execute(tx.t.evidence_bundle.insert().values(**bundle, created_utc=now))
    if items:
        tx.execute(tx.t.evidence_item.insert(), [{**item, "created_utc": now} for item in items])
    return str(bundle["bundle_id"])


def get_bundle(tx: Tx, bundle_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    b, i = tx.t.evidence_bundle, tx.t.evidence_item
    row = tx.execute(select(b).where(b.c.bundle_id == bundle_id)).first()
    if row is None:
        return None
    items = tx.execute(select(i).where(i.c.bundle_id == bundle_id).order_by(i.c.sequence)).all()
    return dict(row._mapping), [dict(item._mapping) for item in items]
