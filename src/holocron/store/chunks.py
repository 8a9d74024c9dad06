"""Chunk rows: the canonical text units that embeddings and search hits point at."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, text

from holocron.store.database import Database, Tx, insert_ignoring_conflicts
from holocron.store.types import utcnow

_ID_BATCH = 500


@dataclass(frozen=True)
class ChunkRow:
    chunk_id: str
    source_id: str
    source_type: str
    source_ref: dict[str, Any]
    chunk_index: int
    start_offset: int
    end_offset: int
    content: str
    content_sha256: str
    policy_version: str
    policy_json: dict[str, Any]
    context: str | None = None  # embedded before the content (see holocron.chunking.embedding_input)


def replace_chunks(tx: Tx, chunks_by_source: Mapping[str, Sequence[ChunkRow]], run_id: str | None) -> int:
    """Make each source's chunks exactly the given ones: keep identical ones, add new, drop stale.

    A few statements per batch of sources, whatever its size. Stale chunks take their embeddings with them
    (ON DELETE CASCADE). Returns how many chunks were inserted.
    """
    if not chunks_by_source:
        return 0
    table = tx.t.chunk
    wanted = {c.chunk_id for rows in chunks_by_source.values() for c in rows}
    existing = tx.execute(select(table.c.chunk_id).where(table.c.source_id.in_(list(chunks_by_source)))).scalars()
    stale = [chunk_id for chunk_id in existing if chunk_id not in wanted]
    for start in range(0, len(stale), _ID_BATCH):
        tx.execute(delete(table).where(table.c.chunk_id.in_(stale[start : start + _ID_BATCH])))
    now = utcnow()
    rows = [
        {
            "chunk_id": c.chunk_id,
            "source_id": c.source_id,
            "source_type": c.source_type,
            "source_ref_json": c.source_ref,
            "chunk_index": c.chunk_index,
            "start_offset": c.start_offset,
            "end_offset": c.end_offset,
            "content": c.content,
            "content_sha256": c.content_sha256,
            "byte_count": len(c.content.encode("utf-8")),
            "context": c.context,
            "policy_version": c.policy_version,
            "policy_json": c.policy_json,
            "run_id": run_id,
            "created_utc": now,
        }
        for source_rows in chunks_by_source.values()
        for c in source_rows
    ]
    if not rows:
        return 0
    statement = insert_ignoring_conflicts(tx, table, ["chunk_id"]).returning(table.c.chunk_id)
    return len(tx.execute(statement, rows).all())


@dataclass(frozen=True)
class PendingChunk:
    chunk_id: str
    content: str
    content_sha256: str
    context: str | None = None


def chunks_missing_embeddings(
    tx: Tx,
    embedding_space_id: int,
    *,
    after: str = "",
    limit: int = 256,
    chunk_ids: Sequence[str] | None = None,
) -> list[PendingChunk]:
    """Chunks with no embedding of their current text in this space, in chunk-id order (keyset paging)."""
    c, e = tx.t.chunk, tx.t.embedding
    has_embedding = (
        select(e.c.embedding_id)
        .where(
            e.c.chunk_id == c.c.chunk_id,
            e.c.embedding_space_id == embedding_space_id,
            e.c.input_content_sha256 == c.c.content_sha256,
        )
        .exists()
    )
    query = select(c.c.chunk_id, c.c.content, c.c.content_sha256, c.c.context).where(
        c.c.chunk_id > after, ~has_embedding
    )
    if chunk_ids is not None:
        query = query.where(c.c.chunk_id.in_(list(chunk_ids)))
    rows = tx.execute(query.order_by(c.c.chunk_id).limit(limit)).all()
    return [PendingChunk(row.chunk_id, row.content, row.content_sha256, row.context) for row in rows]


def count_chunks(tx: Tx) -> int:
    return int(tx.execute(select(func.count()).select_from(tx.t.chunk)).scalar_one())


def get_chunks(tx: Tx, chunk_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Chunk rows with their source's title and system, keyed by chunk id."""
    c, reg = tx.t.chunk, tx.t.source_registry
    rows = tx.execute(
        select(
            c.c.chunk_id,
            c.c.source_id,
            c.c.source_type,
            c.c.source_ref_json,
            c.c.chunk_index,
            c.c.start_offset,
            c.c.end_offset,
            c.c.content,
            c.c.content_sha256,
            c.c.policy_version,
            reg.c.title,
            reg.c.source_system,
            reg.c.tags_json,
        )
        .join(reg, reg.c.source_id == c.c.source_id)
        .where(c.c.chunk_id.in_(list(chunk_ids)))
    ).all()
    return {row.chunk_id: dict(row._mapping) for row in rows}


def source_chunks(tx: Tx, source_id: str, *, limit: int = 1000) -> list[dict[str, Any]]:
    """A source's chunks in reading order, each with its source's title and system: the evidence an
    interrogation of one page reads."""
    c, s = tx.t.chunk, tx.t.source_registry
    rows = tx.execute(
        select(c, s.c.title, s.c.source_system)
        .join(s, s.c.source_id == c.c.source_id)
        .where(c.c.source_id == source_id)
        .order_by(c.c.chunk_index)
        .limit(limit)
    ).all()
    return [dict(row._mapping) for row in rows]


def refresh_chunk_statistics(db: Database, written: int) -> bool:
    """PostgreSQL: ``ANALYZE`` the chunk table after a run that wrote a tenth of it, or when it has never been
    analysed; whether it ran.

    Autovacuum would do the same on its next round, but a search straight after a bulk load would meanwhile
    plan with no statistics, and the keyword search reads its terms' shares of the chunks from them
    (:func:`holocron.retrieval.keyword.keyword_search`). PostgreSQL's own advice after a bulk load.
    """
    if db.dialect != "postgresql" or written <= 0:
        return False
    with db.read() as tx:
        table = tx.t.chunk
        # The planner's row count rather than count(*): this runs at the end of every index run that wrote chunks.
        found = tx.execute(
            text(
                "SELECT (SELECT reltuples FROM pg_class WHERE oid = CAST(:qualified AS regclass)), EXISTS ("
                "SELECT 1 FROM pg_stats WHERE schemaname = :schema AND tablename = :table AND attname = 'content_tsv')"
            ),
            {"qualified": tx.t.qualified(table), "schema": table.schema or "public", "table": table.name},
        ).one()
    total, analysed = max(float(found[0] or 0), 0.0), bool(found[1])
    if analysed and written * 10 < total:
        return False
    with db.write() as tx:
        tx.execute(text(f"ANALYZE {tx.t.qualified(tx.t.chunk)}"))
    return True
