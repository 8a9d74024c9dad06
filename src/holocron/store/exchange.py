"""The lake exchange's rows: ``lake.raw_exchange_record``, and the tables a snapshot is read from.

A snapshot is streamed: each reader holds one read transaction (one consistent view) and fetches its rows
``batch_size`` at a time (a server-side cursor on PostgreSQL), so an installation of any size is exported
without loading it. Writes are idempotent (``INSERT ... ON CONFLICT DO NOTHING`` on the natural keys).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.sql import Select

from holocron.store.database import Database, Tx, insert_ignoring_conflicts
from holocron.store.types import utcnow

KEY_BATCH = 500
"""The most keys one ``IN (...)`` lookup names (well under SQLite's limit on bound variables)."""


def _stream(db: Database, query: Select[Any], batch_size: int) -> Iterator[dict[str, Any]]:
    with db.read() as tx:
        result = tx.conn.execution_options(yield_per=batch_size).execute(query)
        try:
            for row in result:  # (column names as plain str: a table's are str subclasses)
                yield {str(name): value for name, value in row._mapping.items()}
        finally:
            result.close()


def ingest_record_rows(db: Database, *, batch_size: int = 500) -> Iterator[dict[str, Any]]:
    """Every ``ingest.ingest_records`` row, oldest first, streamed."""
    raw = db.t.ingest_records
    return _stream(db, select(raw).order_by(raw.c.ingest_id), batch_size)


def llm_artifact_rows(db: Database, *, batch_size: int = 500) -> Iterator[dict[str, Any]]:
    """Every ``llm.artifact`` row with its run's interrogation and model (``run_*`` columns), streamed."""
    a, r = db.t.llm_artifact, db.t.llm_run
    query = (
        select(
            a,
            r.c.interrogation_key.label("run_interrogation_key"),
            r.c.interrogation_version.label("run_interrogation_version"),
            r.c.provider.label("run_provider"),
            r.c.model_name.label("run_model_name"),
            r.c.model_tag.label("run_model_tag"),
            r.c.model_digest.label("run_model_digest"),
        )
        .select_from(a.join(r, r.c.run_id == a.c.run_id))
        .order_by(a.c.artifact_id)
    )
    return _stream(db, query, batch_size)


def llm_run_rows(db: Database, *, batch_size: int = 500) -> Iterator[dict[str, Any]]:
    """Every ``llm.run`` row, oldest first, streamed."""
    r = db.t.llm_run
    return _stream(db, select(r).order_by(r.c.started_utc, r.c.run_id), batch_size)


def exchange_record_rows(db: Database, exchange_type: str, *, batch_size: int = 500) -> Iterator[dict[str, Any]]:
    """Every ``lake.raw_exchange_record`` row of one exchange type, by natural key and time, streamed."""
    x = db.t.raw_exchange_record
    query = (
        select(x)
        .where(x.c.exchange_type == exchange_type)
        .order_by(x.c.natural_key, x.c.observed_at_utc, x.c.content_sha256)
    )
    return _stream(db, query, batch_size)


def existing_llm_run_ids(tx: Tx, run_ids: Sequence[str]) -> set[str]:
    """Which of these run ids ``llm.run`` holds."""
    r = tx.t.llm_run
    found: set[str] = set()
    for part in _chunks(list(dict.fromkeys(run_ids))):
        found.update(tx.execute(select(r.c.run_id).where(r.c.run_id.in_(list(part)))).scalars())
    return found


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), KEY_BATCH):
        yield items[start : start + KEY_BATCH]


def exchange_versions(tx: Tx, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], set[str]]:
    """The content hashes ``lake.raw_exchange_record`` holds for each (exchange_type, natural_key) given."""
    x = tx.t.raw_exchange_record
    found: dict[tuple[str, str], set[str]] = {}
    for part in _chunks(list(dict.fromkeys(keys))):
        rows = tx.execute(
            select(x.c.exchange_type, x.c.natural_key, x.c.content_sha256).where(
                tuple_(x.c.exchange_type, x.c.natural_key).in_(list(part))
            )
        )
        for row in rows:
            found.setdefault((row.exchange_type, row.natural_key), set()).add(row.content_sha256)
    return found


def add_exchange_records_in(tx: Tx, records: Sequence[Mapping[str, Any]]) -> None:
    """New ``lake.raw_exchange_record`` rows (``exchange_type``, ``natural_key``, ``payload_json``,
    ``content_sha256``, ``source_entity``, ``observed_at_utc``); a version already there is left alone."""
    if not records:
        return
    now = utcnow()
    tx.execute(
        insert_ignoring_conflicts(tx, tx.t.raw_exchange_record, ["exchange_type", "natural_key", "content_sha256"]),
        [{**r, "exchange_id": str(uuid.uuid4()), "created_at_utc": now} for r in records],
    )


def existing_ingest_keys(tx: Tx, keys: Sequence[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Which of these (source_system, resource_id, hash_sha256) ``ingest.ingest_records`` holds."""
    raw = tx.t.ingest_records
    found: set[tuple[str, str, str]] = set()
    for part in _chunks(list(dict.fromkeys(keys))):
        rows = tx.execute(
            select(raw.c.source_system, raw.c.resource_id, raw.c.hash_sha256).where(
                tuple_(raw.c.source_system, raw.c.resource_id, raw.c.hash_sha256).in_(list(part))
            )
        )
        found.update((row.source_system, row.resource_id, row.hash_sha256) for row in rows)
    return found


def add_ingest_records_in(tx: Tx, rows: Sequence[Mapping[str, Any]]) -> None:
    """Raw records as ``ingest.ingest_records`` rows; one already there (same source and hash) is left alone."""
    if rows:
        tx.execute(
            insert_ignoring_conflicts(tx, tx.t.ingest_records, ["source_system", "resource_id", "hash_sha256"]),
            list(rows),
        )


def exchange_counts(tx: Tx) -> dict[str, int]:
    """``lake.raw_exchange_record`` rows by exchange type."""
    x = tx.t.raw_exchange_record
    rows = tx.execute(select(x.c.exchange_type, func.count()).group_by(x.c.exchange_type))
    return {kind: int(n) for kind, n in rows}
