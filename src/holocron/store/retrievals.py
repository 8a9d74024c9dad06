"""The query log: every retrieval and its hits, for audit and for evaluation."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select

from holocron.store.database import Database, Tx
from holocron.store.types import utcnow


@dataclass(frozen=True)
class LoggedHit:
    rank: int
    chunk_id: str
    score: float
    metadata: dict[str, Any]


def log_retrieval(
    db: Database,
    *,
    embedding_space_id: int,
    query_text: str,
    query_vector: np.ndarray | None,
    top_k: int,
    mode: str,
    filters: dict[str, Any],
    policy: dict[str, Any],
    latency_ms: float,
    hits: Sequence[LoggedHit],
    run_id: str | None = None,
) -> str:
    retrieval_id = str(uuid.uuid4())
    with db.write() as tx:
        tx.execute(
            tx.t.retrieval.insert().values(
                retrieval_id=retrieval_id,
                embedding_space_id=embedding_space_id,
                query_text=query_text,
                query_embedding=query_vector,
                top_k=top_k,
                mode=mode,
                filters_json=filters,
                policy_json=policy,
                latency_ms=latency_ms,
                run_id=run_id,
                created_utc=utcnow(),
            )
        )
        if hits:
            tx.execute(
                tx.t.retrieval_hit.insert(),
                [
                    {
                        "retrieval_id": retrieval_id,
                        "rank": hit.rank,
                        "chunk_id": hit.chunk_id,
                        "score": hit.score,
                        "metadata_json": hit.metadata,
                    }
                    for hit in hits
                ],
            )
    return retrieval_id


def get_retrieval(tx: Tx, retrieval_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    r, h = tx.t.retrieval, tx.t.retrieval_hit
    row = tx.execute(select(r).where(r.c.retrieval_id == retrieval_id)).first()
    if row is None:
        return None
    hits = tx.execute(select(h).where(h.c.retrieval_id == retrieval_id).order_by(h.c.rank)).all()
    return dict(row._mapping), [dict(hit._mapping) for hit in hits]
