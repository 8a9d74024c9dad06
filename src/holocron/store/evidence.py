"""Evidence bundles and their items (``llm.evidence_bundle`` / ``llm.evidence_item``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from holocron.evidence.bundle import EvidenceBundle
from holocron.store.database import Database, Tx
from holocron.store.types import utcnow


def save_bundle(db: Database, bundle: EvidenceBundle) -> str:
    """Store the bundle and its items in one transaction; returns the bundle id."""
    now = utcnow()
    with db.write() as tx:
        tx.execute(
            tx.t.evidence_bundle.insert().values(
                bundle_id=bundle.bundle_id,
                bundle_type=bundle.bundle_type,
                query_text=bundle.query,
                retrieval_id=bundle.retrieval_id or None,
                policy_json=bundle.policy.to_json(),
                stats_json=bundle.stats(),
                created_utc=now,
            )
        )
        if bundle.items:
            tx.execute(
                tx.t.evidence_item.insert(),
                [
                    {
                        "bundle_id": bundle.bundle_id,
                        "sequence": item.sequence,
                        "evidence_id": item.evidence_id,
                        "content_type": "text/plain",
                        "content_text": item.text,
                        "content_ref_json": {
                            "chunk_id": item.chunk_id,
                            "source_id": item.source_id,
                            "source_ref": item.source_ref,
                            "start_offset": item.start_offset,
                            "end_offset": item.end_offset,
                        },
                        "metadata_json": {
                            "title": item.title,
                            "source_type": item.source_type,
                            "source_system": item.source_system,
                            "rank": item.rank,
                            "score": item.score,
                            "original_bytes": item.original_bytes,
                            "truncated": item.truncated,
                        },
                        "created_utc": now,
                    }
                    for item in bundle.items
                ],
            )
    return bundle.bundle_id


def get_bundle(tx: Tx, bundle_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    b, i = tx.t.evidence_bundle, tx.t.evidence_item
    row = tx.execute(select(b).where(b.c.bundle_id == bundle_id)).first()
    if row is None:
        return None
    items = tx.execute(select(i).where(i.c.bundle_id == bundle_id).order_by(i.c.sequence)).all()
    return dict(row._mapping), [dict(item._mapping) for item in items]
